"""Materialize the analytics asset graph against a real database and a given store.

``materialize_graph`` runs every asset of the code location (the observable site sources
included, so their data versions are recorded) in process. The definitions come from
``build_defs``, as the code location's do; the test binds only the database URL, the store and
the parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import psycopg
import pytest

from cocktail_assets.definitions import build_defs
from cocktail_assets.environments import read_settings
from cocktail_assets.resources.database import CocktailDatabase
from cocktail_assets.resources.io_manager import ArtifactIOManager
from cocktail_assets.resources.params import AnalyticsParams
from cocktail_assets.resources.store import AnalyticsStore

# Every asset of the refresh's graph; the day-partitioned activity domain has its own runs and
# tests (tests/cocktail_assets/activity).
EVERYTHING = dg.AssetSelection.all(include_sources=True) - dg.AssetSelection.groups("activity")


def graph_defs(
    db_url: str, store: AnalyticsStore, params: AnalyticsParams | None = None
) -> dg.Definitions:
    """The code location of the embedded default, bound to this database and store."""
    return build_defs(read_settings({}), resources={
        "database": CocktailDatabase(url=db_url),
        "store": store,
        "params": params or AnalyticsParams(),
        "io_manager": ArtifactIOManager(store=store),
    })


# The refresh graph's assets of the code location (their definitions do not depend on the
# resources bound).
GRAPH_ASSETS: list[Any] = [
    a for a in build_defs(read_settings({})).assets or []
    if not any(k.path[0] == "activity" for k in (
        [a.key] if isinstance(a, dg.SourceAsset) else a.keys))
]


def materialize_graph(
    db_url: str,
    store: AnalyticsStore,
    *,
    instance: dg.DagsterInstance | None = None,
    params: AnalyticsParams | None = None,
    selection: dg.AssetSelection = EVERYTHING,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One in-process run of ``selection`` (by default: observe every source, materialize all)."""
    defs = graph_defs(db_url, store, params)
    assets, resources = list(defs.assets or []), dict(defs.resources or {})
    if instance is not None:
        return dg.materialize(
            assets, resources=resources, instance=instance, selection=selection,
            raise_on_error=raise_on_error,
        )
    with dg.DagsterInstance.ephemeral() as ephemeral:
        return dg.materialize(
            assets, resources=resources, instance=ephemeral, selection=selection,
            raise_on_error=raise_on_error,
        )


class Published:
    """Reads what the graph published, straight from the folder or bucket (not via the store
    resource under test): ``<prefix>/v1/<name>``."""

    def __init__(self, *, local_dir: Path | None = None, bucket: str | None = None,
                 endpoint_url: str | None = None, prefix: str = "analytics") -> None:
        self.local_dir, self.bucket, self.prefix = local_dir, bucket, prefix
        if bucket:
            import boto3

            self._s3 = boto3.client("s3", endpoint_url=endpoint_url)

    def key(self, name: str) -> str:
        return f"{self.prefix}/v1/{name}"

    def uri(self, name: str) -> str:
        if self.bucket:
            return f"s3://{self.bucket}/{self.key(name)}"
        assert self.local_dir is not None
        return (self.local_dir / self.key(name)).as_uri()

    def keys(self) -> set[str]:
        """Every published key (intermediates under work/ excluded)."""
        if self.bucket:
            listed = self._s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
            found = {o["Key"] for o in listed}
        else:
            assert self.local_dir is not None
            found = {
                p.relative_to(self.local_dir).as_posix()
                for p in self.local_dir.rglob("*") if p.is_file()
            }
        return {k for k in found if not k.startswith(f"{self.prefix}/v1/work/")}

    def raw(self, name: str) -> bytes:
        if self.bucket:
            return self._s3.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        assert self.local_dir is not None
        return (self.local_dir / self.key(name)).read_bytes()

    def document(self, analytics_type: str) -> dict[str, Any]:
        return json.loads(self.raw(f"{analytics_type}.json").decode("utf-8"))

    def data(self, analytics_type: str) -> Any:
        return self.document(analytics_type)["data"]

    def array(self, name: str) -> np.ndarray:
        import io

        return np.load(io.BytesIO(self.raw(name)), allow_pickle=False)

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        import io

        with np.load(io.BytesIO(self.raw(name)), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


@pytest.fixture
def local_target(tmp_path: Path) -> tuple[AnalyticsStore, Published]:
    folder = tmp_path / "store"
    return AnalyticsStore(local_dir=str(folder)), Published(local_dir=folder)


@pytest.fixture
def s3_target(s3_bucket: str, moto_endpoint: str) -> tuple[AnalyticsStore, Published]:
    return (
        AnalyticsStore(bucket=s3_bucket, endpoint_url=moto_endpoint, region="us-east-1"),
        Published(bucket=s3_bucket, endpoint_url=moto_endpoint),
    )


@pytest.fixture
def sample_db_url(db_url: str) -> Iterator[str]:
    """A fresh database holding the bundled sample."""
    from cocktail_assets.db.seed import seed_sample

    with psycopg.connect(db_url) as conn:
        seed_sample(conn)
    yield db_url


def execute(db_url: str, statement: str, params: Any = None) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(statement, params)


def query(db_url: str, statement: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(statement, params).fetchall()
