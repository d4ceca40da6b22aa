"""PNG previews for materialization metadata: a person would rather look than read."""

from __future__ import annotations

import base64
import io

import dagster as dg
import numpy as np


def scatter_preview(coords: np.ndarray, title: str) -> dg.MetadataValue:
    """A small scatter plot of a 2-D layout as Markdown with an inline PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    if coords.size:
        ax.scatter(coords[:, 0], coords[:, 1], s=4, alpha=0.6)
    ax.set_title(f"{title} ({coords.shape[0]} recipes)")
    ax.set_xticks([])
    ax.set_yticks([])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")
