"""The run tags the project reads and writes, in one leaf module every layer may import.

- ``REFRESH_TAG``: the run is an analytics refresh (every door tags it: CLI, sensor, UI job).
- ``TRIGGER_TAG``: who asked for it (``cli``, ``sensor``, ``ui``).
- ``CHANGE_SNAPSHOT_TAG``: the change-log snapshot recorded before the run's first read; the
  edits visible in it are what a successful run settles.
- ``SETTLED_TAG``: the run's edits were settled (the number of change rows), so nothing redoes it.
"""

from __future__ import annotations

REFRESH_TAG = "cocktail-assets/refresh"
TRIGGER_TAG = "cocktail-assets/trigger"
CHANGE_SNAPSHOT_TAG = "cocktail-assets/change-snapshot"
SETTLED_TAG = "cocktail-assets/settled"
