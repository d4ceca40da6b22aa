"""The analytics store: envelope round trip locally and on moto S3, atomic publishes."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.exceptions import ConnectionClosedError

from cocktail_assets.errors import StoreError
from cocktail_assets.resources.store import AnalyticsStore

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
DATA = [{"recipe_id": 1, "recipe_name": "Piña Colada 🍍 \"Jo's\"", "x": 0.5, "y": -1.0}]


def _check_envelope(document: dict, analytics_type: str) -> None:
    assert document["data"] == DATA
    meta = document["metadata"]
    assert set(meta) == {"generated_at", "storage_version", "analytics_type"}
    assert ISO_Z.match(meta["generated_at"]), meta["generated_at"]
    assert meta["storage_version"] == "v1"
    assert meta["analytics_type"] == analytics_type


def test_local_round_trip_and_key_layout(tmp_path: Path) -> None:
    store = AnalyticsStore(local_dir=str(tmp_path))
    uri = store.publish_json("cocktail-space", DATA)
    path = tmp_path / "analytics" / "v1" / "cocktail-space.json"
    assert uri == path.as_uri()
    _check_envelope(json.loads(path.read_text(encoding="utf-8")), "cocktail-space")
    _check_envelope(store.read_json("cocktail-space"), "cocktail-space")
    store.put_array("ingredient-distances-em.npy", np.eye(3))
    np.testing.assert_array_equal(store.get_array("ingredient-distances-em.npy"), np.eye(3))


def test_local_failed_write_keeps_previous_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AnalyticsStore(local_dir=str(tmp_path), prefix="custom/prefix")
    store.publish_json("ingredient-usage", DATA)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.publish_json("ingredient-usage", [{"other": True}])
    monkeypatch.undo()
    _check_envelope(store.read_json("ingredient-usage"), "ingredient-usage")
    folder = tmp_path / "custom" / "prefix" / "v1"
    assert [p.name for p in folder.iterdir()] == ["ingredient-usage.json"]


def test_s3_round_trip(s3_bucket: str, moto_endpoint: str) -> None:
    store = AnalyticsStore(bucket=s3_bucket, endpoint_url=moto_endpoint)
    assert store.publish_json("recipe-complexity", DATA) == (
        f"s3://{s3_bucket}/analytics/v1/recipe-complexity.json"
    )
    body = boto3.client("s3", endpoint_url=moto_endpoint).get_object(
        Bucket=s3_bucket, Key="analytics/v1/recipe-complexity.json"
    )["Body"].read()
    _check_envelope(json.loads(body), "recipe-complexity")
    arrays = {"data": np.arange(4.0), "ids": np.array([3, 1])}
    store.put_arrays("recipe-distances-em.npz", **arrays)
    loaded = store.get_arrays("recipe-distances-em.npz")
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)


def test_s3_failed_put_leaves_previous_artifact(s3_bucket: str, moto_endpoint: str) -> None:
    store = AnalyticsStore(bucket=s3_bucket, endpoint_url=moto_endpoint)
    store.publish_json("ingredient-tree", DATA)

    # The connection drops during the upload, on every retry botocore makes.
    def drop_connection(request, **_: object) -> None:
        if request.method == "PUT":
            raise ConnectionClosedError(endpoint_url=request.url)

    store._s3().meta.events.register("before-send.s3.PutObject", drop_connection)
    with pytest.raises(StoreError, match=f"s3://{s3_bucket}/analytics/v1/ingredient-tree.json"):
        store.publish_json("ingredient-tree", [{"replacement": "x" * 1000}])
    fresh = AnalyticsStore(bucket=s3_bucket, endpoint_url=moto_endpoint)
    _check_envelope(fresh.read_json("ingredient-tree"), "ingredient-tree")


def test_missing_artifact_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such artifact"):
        AnalyticsStore(local_dir=str(tmp_path)).read_json("cocktail-space")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_arrays_round_trip_compressed_or_not(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Published arrays deflate their integers (floats barely shrink, so they are stored), the
    intermediates between steps deflate nothing; both read back bit for bit, and the deflated
    integers really are smaller."""
    if where == "s3":
        store = AnalyticsStore(bucket=request.getfixturevalue("s3_bucket"),
                               endpoint_url=request.getfixturevalue("moto_endpoint"))
    else:
        store = AnalyticsStore(local_dir=str(tmp_path))
    arrays = {"plans.mass": np.linspace(0, 1, 50_000), "pair_i": np.arange(50_000) % 7,
              "__class__": np.array("barcart.em:EMResult")}
    sizes, kinds = {}, {}
    for compressed in (True, False):
        name = f"work/spaces/em_fit-{compressed}.npz"
        store.put_arrays(name, compressed=compressed, **arrays)
        loaded = store.get_arrays(name)
        assert set(loaded) == set(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].dtype == value.dtype
        sizes[compressed] = len(store.get_bytes(name))
        with zipfile.ZipFile(io.BytesIO(store.get_bytes(name))) as archive:
            kinds[compressed] = {i.filename: i.compress_type for i in archive.infolist()}
    assert kinds[True] == {"plans.mass.npy": zipfile.ZIP_STORED,
                           "pair_i.npy": zipfile.ZIP_DEFLATED, "__class__.npy": zipfile.ZIP_STORED}
    assert set(kinds[False].values()) == {zipfile.ZIP_STORED}
    assert sizes[False] - sizes[True] > 0.8 * arrays["pair_i"].nbytes
    with pytest.raises(StoreError, match=r"work/spaces/missing\.npz"):
        store.get_arrays("work/spaces/missing.npz")
