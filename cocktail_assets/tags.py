"""The run tags the project reads and writes, in one leaf module every layer may import.

- ``REFRESH_TAG``: the run is an analytics refresh (every door tags it: CLI, sensor, UI job).
- ``TRIGGER_TAG``: who asked for it (``cli``, ``sensor``, ``ui``).
- ``CHANGE_SNAPSHOT_TAG``: the change-log snapshot recorded before the run's first read; the
  edits visible in it are what a successful run settles.
- ``ACTIVITY_TAG``: the run materializes days of ``activity/daily`` (schedule, late-edit sensor,
  backfill).
- ``SETTLED_TAG``: the run's edits were settled (the number of change rows), so nothing redoes it.
- ``LOCK_TAG``: the run opened its analytics-lock session on the site database
  (``db/run_lock.py``); from then on, no session in its name means its process is gone.
- ``CODE_LOCATION_TAG``: Dagster's own tag naming the run's code location, which the run
  queue limits to one run in progress; the CLI puts it on its runs so queued runs wait for it.
"""

from __future__ import annotations

REFRESH_TAG = "cocktail-assets/refresh"
TRIGGER_TAG = "cocktail-assets/trigger"
CHANGE_SNAPSHOT_TAG = "cocktail-assets/change-snapshot"
SETTLED_TAG = "cocktail-assets/settled"
ACTIVITY_TAG = "cocktail-assets/activity"
LOCK_TAG = "cocktail-assets/lock-session"
CODE_LOCATION_TAG = "dagster/code_location"
CODE_LOCATION = "cocktail_assets"  # workspace.yaml's location_name
