"""The one door to Dagster's private modules (``dagster._…``).

Everything else in the project imports Dagster's public names only. What is here has no public
name in Dagster 1.13; each entry says what needs it. A test
(``tests/cocktail_assets/test_dagster_private.py``) imports every name from its Dagster module,
so an upgrade that moves one fails there, naming it, instead of deep inside a run.
"""

from __future__ import annotations

# FileCodePointer, ReconstructableJob: ``reconstructable()`` returns the latter; the Batch
# launcher checks for it to refuse, with a message, a job that a container cannot rebuild
# (``materialize()``), and warns on a file-based code pointer, whose path the image must have.
from dagster._core.code_pointer import FileCodePointer

# BaseAssetGraph: the type ``Definitions.resolve_asset_graph()`` and
# ``RepositoryDefinition.asset_graph`` return; the refresh code receives one as an argument and
# names it in type hints. Dagster exports no public alias.
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph

# The tag an observation carries its data version in: the site observer sensor records the
# sources' observations itself (``SensorResult.asset_events``), as does the late-edit sensor for
# the days of ``activity/late_edits`` (whose observe function yields the same observations:
# ``ObserveResult`` has no partition), and ``AssetObservation`` has no data-version parameter.
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.definitions.reconstruct import ReconstructableJob

# The activity domain (cocktail_assets/activity/): its backfill command creates and watches a
# Dagster asset backfill through the instance (PartitionBackfill, BulkActionStatus,
# make_new_backfill_id: what the UI's "Launch backfill" does), names its job type in hints
# (UnresolvedAssetJobDefinition), and its late-edit sensor and tests read the tags Dagster puts
# on partition runs (partition name, the range of a multi-day run, the backfill id).
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

# core_dagster_event_sequence_for_step: what Dagster runs for a step without a launcher. The
# Batch launcher calls it to run a step in-process after all when the work is too small for
# Batch to pay (BATCH_MIN_RECIPES), exactly as Dagster would have.
from dagster._core.execution.plan.execute_step import core_dagster_event_sequence_for_step

# The Batch launcher replays the container's events into the host's log manager as Dagster
# itself does for a step's events: these build the log record the run's loggers expect
# (the progress logger of ``cocktail-assets refresh`` reads the metadata attribute too).
from dagster._core.log_manager import (
    LOG_RECORD_EVENT_ATTR,
    LOG_RECORD_METADATA_ATTR,
    construct_log_record_message,
    construct_log_record_metadata,
)

# Instigator (sensor) state for ``cocktail-assets status``: the public instance API takes the
# enum to list sensor states and ticks.
from dagster._core.scheduler.instigation import InstigatorType

# ``cocktail-assets status`` reads each check's latest *completed* evaluation (a planned one,
# from a run in progress or one that failed before the check ran, is not a verdict); the
# instance's history query filters by this status enum.
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

# The instance's local folders, subclassed in ``instance.py`` so that ``dagster.yaml`` needs no
# variable for them (Dagster's own dagster.yaml names these modules too).
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG as RANGE_END_TAG,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_START_TAG as RANGE_START_TAG,
)

# The tag Dagster stores a run request's run key under; the refresh sensor looks runs up by it
# to avoid requesting a change point twice.
from dagster._core.storage.tags import (
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
)
from dagster._core.utils import make_new_backfill_id

# The error record inside a step-failure event; the Batch event stream rebuilds it from the
# container's chunks and the CLI reads its cause chain.
from dagster._utils.error import SerializableErrorInfo

__all__ = [
    "BACKFILL_ID_TAG",
    "DATA_VERSION_TAG",
    "LOG_RECORD_EVENT_ATTR",
    "LOG_RECORD_METADATA_ATTR",
    "PARTITION_NAME_TAG",
    "RANGE_END_TAG",
    "RANGE_START_TAG",
    "RUN_KEY_TAG",
    "SENSOR_NAME_TAG",
    "AssetCheckExecutionRecordStatus",
    "AssetJob",
    "BaseAssetGraph",
    "BulkActionStatus",
    "FileCodePointer",
    "InstigatorType",
    "LocalArtifactStorage",
    "LocalComputeLogManager",
    "PartitionBackfill",
    "ReconstructableJob",
    "SerializableErrorInfo",
    "construct_log_record_message",
    "construct_log_record_metadata",
    "core_dagster_event_sequence_for_step",
    "make_new_backfill_id",
]
