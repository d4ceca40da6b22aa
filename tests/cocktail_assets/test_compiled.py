"""cocktail_assets.compiled: after the switch numba caches umap-learn's kernels, same layout.

The switch reaches into umap-learn and numba internals (see the module's docstring); these
tests fail, naming the attribute, when an upgrade moves one, and show in fresh processes that
the kernels are stored once and loaded afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core.dispatcher import Dispatcher

from cocktail_assets.compiled import (
    UMAP_UNCACHED_KERNELS,
    enable_umap_kernel_caching,
    umap_kernel,
)

REPO = Path(__file__).resolve().parents[2]

# One barcart UMAP fit in a fresh process; writes what numba compiled (a cache load is not a
# compilation), each listed kernel's cache statistics and the layout to the file argv[2].
_FIT = """
import json, sys
import numpy as np
from numba.core import event

compiled = []

class Compiles(event.Listener):
    def on_start(self, ev):
        f = ev.data["dispatcher"].py_func
        compiled.append(f"{f.__module__}.{f.__qualname__}")

    def on_end(self, ev):
        pass

event.register("numba:compile", Compiles())
from cocktail_assets.compiled import UMAP_UNCACHED_KERNELS, enable_umap_kernel_caching, umap_kernel
if sys.argv[1] == "cached":
    enable_umap_kernel_caching()
from barcart import embed_knn

rng = np.random.default_rng(0)
n = 40
idx = np.array([rng.choice(np.delete(np.arange(n), i), 6, replace=False) for i in range(n)])
layout = embed_knn(idx, np.sort(rng.random((n, 6)), axis=1))
kernels = {}
for module, attribute in UMAP_UNCACHED_KERNELS:
    k = umap_kernel(module, attribute)
    kernels[attribute] = {
        "name": f"{k.py_func.__module__}.{k.py_func.__qualname__}",
        "cache_path": k.stats.cache_path,
        "hits": sum(k.stats.cache_hits.values()),
        "misses": sum(k.stats.cache_misses.values()),
    }
with open(sys.argv[2], "w") as out:
    json.dump({"compiled": compiled, "kernels": kernels, "layout": layout.tolist()}, out)
"""


@pytest.mark.parametrize(("module", "attribute"), UMAP_UNCACHED_KERNELS)
def test_each_kernel_it_switches_is_still_there(module: str, attribute: str) -> None:
    try:
        kernel = umap_kernel(module, attribute)
    except (ImportError, AttributeError) as exc:
        pytest.fail(
            f"umap-learn has no {module}.{attribute} any more ({exc}); "
            "cocktail_assets.compiled.UMAP_UNCACHED_KERNELS needs the kernel's new name"
        )
    assert isinstance(kernel, Dispatcher), f"{module}.{attribute} is no numba dispatcher now"
    assert callable(getattr(kernel, "enable_caching", None)), (
        "numba's Dispatcher.enable_caching() is gone: cocktail_assets.compiled must switch "
        "caching another way"
    )


def test_the_switch_turns_caching_on_once() -> None:
    """In this process: each kernel caches after the call; a second call changes nothing."""
    enable_umap_kernel_caching()
    kernels = [umap_kernel(m, a) for m, a in UMAP_UNCACHED_KERNELS]
    caches = [k._cache for k in kernels]  # the private attribute enable_caching() sets
    for (module, attribute), kernel in zip(UMAP_UNCACHED_KERNELS, kernels, strict=True):
        assert kernel.stats.cache_path is not None, f"{module}.{attribute} does not cache"
    enable_umap_kernel_caching()
    assert [k._cache for k in kernels] == caches


def _fit(mode: str, cache_dir: Path, tmp_path: Path) -> dict:
    out = tmp_path / f"{mode}-{len(list(tmp_path.iterdir()))}.json"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    subprocess.run(
        [sys.executable, "-c", _FIT, mode, str(out)], cwd=REPO, env=env, check=True, timeout=300
    )
    return json.loads(out.read_text())


def _seed_cache(cache_dir: Path) -> None:
    """Copy umap-learn's and pynndescent's own cached kernels from this run's numba cache, so
    the subprocesses do not spend ~25 s compiling pynndescent; the kernels under test are left
    out, so the first cached run must compile and store them."""
    source = os.environ.get("NUMBA_CACHE_DIR")
    cache_dir.mkdir()
    if not source or not Path(source).is_dir():
        return  # numba's default cache beside the packages: start empty (slower, same test)
    names = [umap_kernel(m, a).py_func.__qualname__ for m, a in UMAP_UNCACHED_KERNELS]
    for sub in Path(source).iterdir():
        if sub.is_dir() and sub.name.startswith(("umap_", "pynndescent_")):
            shutil.copytree(
                sub,
                cache_dir / sub.name,
                ignore=lambda _dir, files: [f for f in files if any(f".{n}-" in f for n in names)],
            )


def test_second_process_loads_the_kernels_from_the_cache(tmp_path: Path) -> None:
    cache_dir = tmp_path / "numba-cache"
    _seed_cache(cache_dir)
    runs = tmp_path / "runs"
    runs.mkdir()

    plain = _fit("uncached", cache_dir, runs)
    for attribute, stats in plain["kernels"].items():
        # barcart leaves the compilation policy alone: without the switch nothing caches them
        assert stats["cache_path"] is None, f"{attribute} cached without the switch"
        assert stats["name"] in plain["compiled"]

    first = _fit("cached", cache_dir, runs)
    for attribute, stats in first["kernels"].items():
        assert stats["cache_path"], f"{attribute} does not cache after the switch"
        assert stats["misses"] >= 1 and stats["name"] in first["compiled"], attribute
        stored = [
            p.name for p in Path(stats["cache_path"]).glob("*.nbi")
            if f".{stats['name'].rsplit('.', 1)[-1]}-" in p.name
        ]
        assert stored, f"no cache index for {attribute} in {stats['cache_path']}"

    second = _fit("cached", cache_dir, runs)
    for attribute, stats in second["kernels"].items():
        assert stats["hits"] >= 1 and stats["misses"] == 0, (attribute, stats)
        assert stats["name"] not in second["compiled"], f"{attribute} compiled again"

    # the cache changes where the machine code comes from, not the layout
    assert first["layout"] == plain["layout"] == second["layout"]


def test_recording_sees_a_compile_and_not_a_cache_hit(tmp_path: Path) -> None:
    """``recording_compiles`` (what the Batch worker reports) counts real compilations only:
    a new function compiles once, and a second process loads it from the cache."""
    module = tmp_path / "kernel_for_recording.py"
    module.write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef add_one(x):\n    return x + 1\n"
    )
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from cocktail_assets.compiled import recording_compiles\n"
        "import kernel_for_recording as k\n"
        "with recording_compiles() as c:\n"
        "    k.add_one(1.5)\n"
        "print(','.join(c.names))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=120, check=True).stdout.strip()
        for _ in range(2)
    ]
    assert runs[0].split(",") == ["add_one"]
    assert runs[1] == ""
