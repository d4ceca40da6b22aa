"""The analytics refresh job, and how every path (CLI, sensor, UI) runs it.

Runs execute in one process (the in-process executor: the numeric steps use both cores
themselves, and a step per subprocess would pay Dagster's start-up a dozen times). Heavy steps
leave that process through the step launcher when it is bound. Launched through
``reconstructable`` so a step launcher can rebuild the job on the Batch worker.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

import dagster as dg

from cocktail_assets.dagster_private import LOG_RECORD_METADATA_ATTR
from cocktail_assets.tags import REFRESH_TAG

JOB_NAME = "analytics_refresh"

# Every materializable asset of the graph (sources are observed, not materialized).
ANALYTICS_SELECTION = dg.AssetSelection.groups("catalog", "analytics", "spaces")

_SHOWN_EVENTS = ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "ASSET_MATERIALIZATION")


class _ProgressHandler(logging.Handler):
    """One short line per step event and per progress message (``context.log.info``)."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, LOG_RECORD_METADATA_ATTR, None)
        if not meta or not meta.get("step_key"):
            return
        stamp = datetime.now().strftime("%H:%M:%S")
        event = meta.get("dagster_event")
        if event is None:
            line = meta.get("orig_message", "")
        elif event.event_type_value in _SHOWN_EVENTS:
            line = event.event_type_value.lower().replace("_", " ")
            if event.event_type_value == "STEP_FAILURE":
                line += ": " + meta.get("orig_message", "")
        else:
            return
        print(f"[{stamp}] {meta['step_key']}: {line}", file=sys.stdout, flush=True)


@dg.logger(description="Short progress lines on stdout: step starts, ends and progress logs.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("cocktail_assets.progress")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        log.addHandler(_ProgressHandler())
    return log


analytics_refresh = dg.define_asset_job(
    JOB_NAME,
    selection=ANALYTICS_SELECTION,
    executor_def=dg.in_process_executor,
    tags={REFRESH_TAG: "true"},
    description="Materialize the analytics (all, or the subset a refresh selects).",
)


LOGGERS = {"console": dg.colored_console_logger, "progress": progress_logger}

