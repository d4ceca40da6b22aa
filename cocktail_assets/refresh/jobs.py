"""The analytics refresh job, and how every path (CLI, sensor, UI) runs it.

Runs execute in one process (the in-process executor: the numeric steps use both cores
themselves, and a step per subprocess would pay Dagster's start-up a dozen times). Heavy steps
leave that process through the step launcher when it is bound. Launched through
``reconstructable`` so a step launcher can rebuild the job on the Batch worker.
"""

from __future__ import annotations

import dagster as dg

JOB_NAME = "analytics_refresh"
REFRESH_TAG = "cocktail-assets/refresh"

# Every materializable asset of the graph (sources are observed, not materialized).
ANALYTICS_SELECTION = dg.AssetSelection.groups("catalog", "analytics", "cocktail_spaces")

analytics_refresh = dg.define_asset_job(
    JOB_NAME,
    selection=ANALYTICS_SELECTION,
    executor_def=dg.in_process_executor,
    tags={REFRESH_TAG: "true"},
    description="Materialize the analytics (all, or the subset a refresh selects).",
)


def refresh_job_def() -> dg.JobDefinition:
    """The resolved job with this environment's resources (for ``reconstructable``)."""
    from cocktail_assets.definitions import defs

    return defs.resolve_job_def(JOB_NAME)
