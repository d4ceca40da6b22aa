"""Intermediate assets as arrays in the analytics store: no pickles, readable anywhere.

An intermediate (a frozen dataclass of NumPy arrays, SciPy sparse matrices, scalars and nested
dataclasses) is flattened to named arrays and saved as one ``.npz`` under
``<prefix>/v1/work/<asset key>.npz``, locally or on S3. That is how the heavy steps on AWS
Batch receive their inputs and hand back their outputs, and why the format is plain arrays: a
worker with another Python or library version can still read them.
"""


import dataclasses
import importlib
from typing import Any

import numpy as np
import scipy.sparse as sp
from dagster import ConfigurableIOManager, InputContext, OutputContext, ResourceDependency

from cocktail_assets.resources.store import AnalyticsStore

_CLASS = "__class__"


def to_arrays(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a dataclass of arrays into ``{dotted.name: array}``."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"cannot store {type(obj).__name__}: intermediates are dataclasses")
    cls = type(obj)
    out: dict[str, np.ndarray] = {prefix + _CLASS: np.array(f"{cls.__module__}:{cls.__qualname__}")}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        name = prefix + field.name
        if dataclasses.is_dataclass(value):
            out.update(to_arrays(value, name + "."))
        elif sp.issparse(value):
            csr = sp.csr_matrix(value)
            out[name + ".csr.data"] = csr.data
            out[name + ".csr.indices"] = csr.indices
            out[name + ".csr.indptr"] = csr.indptr
            out[name + ".csr.shape"] = np.array(csr.shape, dtype=np.int64)
        elif value is None:
            out[name + ".none"] = np.array(0)
        elif isinstance(value, np.ndarray):
            if value.dtype == object:
                value = value.astype(str)
            out[name] = value
        else:
            out[name + (".tuple" if isinstance(value, tuple) else "")] = np.asarray(value)
    return out


def from_arrays(arrays: dict[str, np.ndarray], prefix: str = "") -> Any:
    """Rebuild what ``to_arrays`` flattened."""
    module, _, qualname = str(arrays[prefix + _CLASS]).partition(":")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        name = prefix + field.name
        if name + "." + _CLASS in arrays:
            values[field.name] = from_arrays(arrays, name + ".")
        elif name + ".csr.data" in arrays:
            values[field.name] = sp.csr_matrix(
                (arrays[name + ".csr.data"], arrays[name + ".csr.indices"],
                 arrays[name + ".csr.indptr"]),
                shape=tuple(int(x) for x in arrays[name + ".csr.shape"]),
            )
        elif name + ".none" in arrays:
            values[field.name] = None
        elif name + ".tuple" in arrays:
            values[field.name] = tuple(arrays[name + ".tuple"].tolist())
        else:
            value = arrays[name]
            values[field.name] = value.item() if value.ndim == 0 else value
    return cls(**values)


class ArtifactIOManager(ConfigurableIOManager):
    """Stores each intermediate asset as ``work/<key>.npz`` in the analytics store."""

    store: ResourceDependency[AnalyticsStore]

    def _name(self, context: InputContext | OutputContext) -> str:
        return "work/" + "/".join(context.asset_key.path) + ".npz"

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        uri = self.store.put_arrays(self._name(context), compressed=False, **to_arrays(obj))
        context.add_output_metadata({"work_uri": uri})

    def load_input(self, context: InputContext) -> Any:
        return from_arrays(self.store.get_arrays(self._name(context)))
