"""PNG previews for materialization metadata: a person would rather look than read.

The Dagster UI (1.13) renders a Markdown metadata value inline on the asset's page only when it
is shorter than 1,000 characters; longer ones (any image embedded as a data URI) hide behind
"[Show Markdown]". So the picture is stored in the analytics store under
``work/previews/<name>-<digest>.png`` and the metadata is a short Markdown image whose URL the
Dagster webserver itself serves: ``/logs/previews/<name>-<digest>/png``, the route that serves
files of the instance's compute-log manager, which ``cocktail_assets.instance`` resolves for
previews by reading them from the store (local folder or S3). The name carries the PNG's
digest, so a cached copy is never stale, and every materialization keeps its own picture.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from typing import Any

import dagster as dg
import numpy as np

# 800 px wide at 100 dpi: readable without opening anything.
WIDTH_IN, DPI = 8.0, 100
PREVIEW_PREFIX = "work/previews/"
PREVIEW_ROUTE = "/logs/previews/"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}-[0-9a-f]{16}$")


def _figure(height_in: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(WIDTH_IN, height_in), dpi=DPI)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # a name with a character the font lacks (an emoji) is drawn with a box: no notice
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buffer, format="png", dpi=DPI)  # no tight bbox: the width stays 800 px
    plt.close(fig)
    return buffer.getvalue()


def scatter_png(coords: np.ndarray, title: str) -> bytes:
    """A scatter plot of a 2-D layout, 800 × 640 px."""
    fig, ax = _figure(6.4)
    if coords.size:
        ax.scatter(coords[:, 0], coords[:, 1], s=9 if coords.shape[0] < 2000 else 2, alpha=0.6)
    ax.set_title(f"{title} ({coords.shape[0]} recipes)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _png(fig)


def tree_png(document: dict[str, Any], per_parent: int = 6) -> bytes:
    """The ingredient tree's top two levels with their recipe counts, 800 px wide: each top-level
    ingredient, and its ``per_parent`` most used children (the rest counted as "+N more")."""
    tops = sorted(document["children"], key=lambda n: -n["hierarchical_recipe_count"])
    rows: list[tuple[int, str]] = []  # (level, label)
    for top in tops:
        rows.append((1, f"{top['name']} ({top['hierarchical_recipe_count']})"))
        children = sorted(top["children"], key=lambda n: -n["hierarchical_recipe_count"])
        rows += [(2, f"{c['name']} ({c['hierarchical_recipe_count']})")
                 for c in children[:per_parent]]
        if len(children) > per_parent:
            rows.append((2, f"+{len(children) - per_parent} more"))
    # Two columns of rows, so that a tree of a few dozen top-level ingredients still fits.
    per_column = max(1, -(-len(rows) // 2))
    fig, ax = _figure(max(2.0, 0.18 * per_column + 0.8))
    ax.set_axis_off()
    ax.set_xlim(0, 2)
    ax.set_ylim(per_column + 0.5, -0.5)
    ax.set_title(f"{document['name']}: {len(tops)} top-level ingredients, "
                 f"{document['hierarchical_recipe_count']} recipes (top two levels)")
    for i, (level, label) in enumerate(rows):
        column, row = divmod(i, per_column)
        x = column + (0.04 if level == 1 else 0.12)
        if level == 2:
            ax.plot([x - 0.06, x - 0.06, x - 0.01], [row - 0.5, row, row], color="0.6", lw=0.8)
        ax.text(x, row, label, va="center", fontsize=8,
                fontweight="bold" if level == 1 else "normal")
    return _png(fig)


def preview_metadata(store: Any, name: str, png: bytes, title: str) -> dg.MetadataValue:
    """Store ``png`` and return the short Markdown image that shows it on the asset page."""
    digest = hashlib.sha256(png).hexdigest()[:16]
    stem = f"{name}-{digest}"
    store.put_bytes(f"{PREVIEW_PREFIX}{stem}.png", png, "image/png")
    return dg.MetadataValue.md(f"![{title}]({PREVIEW_ROUTE}{stem}/png)")


def preview_name(stem: str) -> str | None:
    """The store key of the preview named ``stem`` (``<name>-<digest>``); None for anything
    else, so the webserver route serves nothing but previews from the store."""
    return f"{PREVIEW_PREFIX}{stem}.png" if _NAME.match(stem) else None
