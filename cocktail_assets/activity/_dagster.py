"""The Dagster internals the activity domain relies on, in one place.

Tags and helpers that Dagster does not export publicly; when the project gathers its private
imports behind one module, these lines move there.
"""

from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJob,
)
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG as RANGE_END_TAG,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_START_TAG as RANGE_START_TAG,
)
from dagster._core.storage.tags import (
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
    RUN_KEY_TAG,
)
from dagster._core.utils import make_new_backfill_id

__all__ = [
    "BACKFILL_ID_TAG", "PARTITION_NAME_TAG", "RANGE_END_TAG", "RANGE_START_TAG", "RUN_KEY_TAG",
    "AssetJob", "BulkActionStatus", "PartitionBackfill", "make_new_backfill_id",
]
