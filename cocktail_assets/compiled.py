"""How this application has numba compile: umap-learn's kernels are cached between processes.

Why. umap-learn 0.5 compiles a few kernels with ``numba.njit`` but without ``cache=True``, so
every new process compiles them again: about 5 s per process on a 2-core machine, paid by
every refresh and by every AWS Batch container that runs a UMAP step, several times the warm
step itself (``spaces/cocktail_space`` takes 1.4 s on the 157-recipe sample). With numba's disk
cache switched on for them, the first process stores the machine code in numba's cache folder
(``NUMBA_CACHE_DIR`` if set, else ``__pycache__`` beside umap) and the next ones load it. The
code is the same machine code compiled with the same flags, so layouts are bit-identical.

Why here. ``barcart`` keeps no global state, so switching a third-party library's compilation
policy is the application's decision; call :func:`enable_umap_kernel_caching` in the process
that runs a UMAP fit, before the fit (it is idempotent and cheap after the first call).

What it touches, none of it public API:

- umap-learn's module attributes listed in :data:`UMAP_UNCACHED_KERNELS` (numba dispatchers
  that are module internals of ``umap.umap_`` and ``umap.layouts``; an upgrade may rename or
  move them);
- numba's ``Dispatcher.enable_caching()``, the undocumented method ``@njit(cache=True)`` uses
  itself, which sets the dispatcher's private ``_cache`` to a ``FunctionCache``; whether it is
  already caching is read from ``Dispatcher.stats.cache_path`` (None while not caching).

``tests/cocktail_assets/test_compiled.py`` fails, naming the attribute, when an upgrade moves
one, and proves in subprocesses that after this call a second process loads every listed kernel
from the cache instead of compiling it, with the same layout.

Left alone on purpose: ``umap.layouts._nb_optimize_layout_euclidean_single_epoch_parallel``.
It wraps the same Python function with ``parallel=True``, and numba's cache index is keyed by
the function's file, name, line and bytecode, not by the ``parallel`` flag, so caching both
would let one load the other's machine code. barcart's seeded fits run single-threaded and
never call it. pynndescent needs nothing: its kernels declare ``cache=True`` themselves.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# (module, attribute) of the umap-learn 0.5 kernels a barcart UMAP fit compiles, which
# umap-learn itself does not cache.
UMAP_UNCACHED_KERNELS: tuple[tuple[str, str], ...] = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)


def umap_kernel(module: str, attribute: str) -> object:
    """The numba dispatcher ``module.attribute`` of umap-learn (AttributeError if gone)."""
    with warnings.catch_warnings():
        # `import umap` without TensorFlow says ParametricUMAP is unavailable; it is not used.
        warnings.filterwarnings(
            "ignore", message="Tensorflow not installed", category=ImportWarning
        )
        return getattr(importlib.import_module(module), attribute)


def enable_umap_kernel_caching() -> None:
    """Have numba cache umap-learn's uncached kernels on disk from now on (idempotent).

    Kernels already compiled in this process keep their in-memory code; only what is
    compiled after the call is stored. A kernel missing after an upgrade is skipped (the run
    only gets slower); the test above fails on it.
    """
    from numba.core.dispatcher import Dispatcher

    for module, attribute in UMAP_UNCACHED_KERNELS:
        try:
            kernel = umap_kernel(module, attribute)
        except (ImportError, AttributeError):
            continue
        if isinstance(kernel, Dispatcher) and kernel.stats.cache_path is None:
            kernel.enable_caching()


@dataclass
class Compiles:
    """The numba functions compiled (not loaded from the cache) while recording."""

    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


@contextmanager
def recording_compiles() -> Iterator[Compiles]:
    """Record every real numba compilation (a cache hit is no ``numba:compile`` event)."""
    from numba.core import event

    found = Compiles([])

    class _Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            dispatcher = (ev.data or {}).get("dispatcher")
            found.names.append(getattr(dispatcher, "__qualname__", None) or str(dispatcher))

        def on_end(self, ev: Any) -> None:
            pass

    listener = _Listener()
    event.register("numba:compile", listener)
    try:
        yield found
    finally:
        event.unregister("numba:compile", listener)
