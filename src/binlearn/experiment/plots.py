"""``curves.png``: loss and accuracy against epoch, from metrics.jsonl records."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from binlearn.atomic import atomic_write_bytes

__all__ = ["plot_curves", "pyplot", "save_png"]


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int = 100) -> None:
    """Render ``fig`` to PNG in memory, close it, and write ``path`` atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_curves(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in records], marker="o", label="train")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (per sample)")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    for key, label in (("train_accuracy", "train"), ("validation_accuracy", "validation"),
                       ("test_accuracy", "test")):
        points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax_acc.plot(*zip(*points, strict=True), marker="o", label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    for axis in (ax_loss, ax_acc):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
