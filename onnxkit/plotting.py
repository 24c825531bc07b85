"""Pictures of a training run, from its metrics.json (matplotlib, imported only when drawing):
curves.png (loss panel and metric panel, train and test per epoch; 600 x 400 pixels per panel) and,
for classifiers, confusion.png (500 x 500 pixels, counts in the cells)."""
import json
import os

__all__ = ["series", "plot_curves", "plot_confusion", "plot_run"]

DPI = 100
PANEL = (6, 4)        # inches per panel of curves.png
CONFUSION = (5, 5)    # inches of confusion.png


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'onnxkit[train]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def series(metrics):
    """{name: per-epoch values} from a metrics dict: its "history" (or the dict itself), numeric lists only."""
    h = metrics.get("history", metrics) if isinstance(metrics, dict) else {}
    return {k: v for k, v in h.items() if isinstance(v, list) and v
            and all(isinstance(x, (int, float)) or x is None for x in v)}


def plot_curves(history, path):
    """Loss panel (train "loss", test "val_loss") and, when present, a metric panel (train and val_);
    the learning rate ("lr") is left out. Returns the path."""
    plt = _pyplot()
    h = {k: v for k, v in series(history).items() if k != "lr"}
    if not h:
        raise ValueError("no per-epoch series to plot")
    losses = {k: v for k, v in h.items() if "loss" in k}
    others = {k: v for k, v in h.items() if "loss" not in k}
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(PANEL[0] * len(panels), PANEL[1]), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for k, v in panel.items():
            label = ("test " + k[4:]) if k.startswith("val_") else ("train " + k)
            ax.plot(range(1, len(v) + 1), [float("nan") if x is None else x for x in v], marker="o",
                    linestyle="--" if k.startswith("val_") else "-", label=label)
        ax.set_xlabel("epoch")
        ax.set_title("loss" if panel is losses else ", ".join(sorted({k.removeprefix("val_") for k in panel})))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_confusion(matrix, path, classes=None):
    """A confusion matrix (rows true, columns predicted) with counts in the cells. Returns the path."""
    import numpy as np
    plt = _pyplot()
    cm = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=CONFUSION)
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    n = cm.shape[0]
    if classes is not None and len(classes) == n:
        ax.set_xticks(range(n), classes, rotation=45 if max(len(str(c)) for c in classes) > 2 else 0)
        ax.set_yticks(range(n), classes)
    if n <= 12:
        top = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_run(run_dir, metrics=None):
    """Draw run_dir/curves.png (and confusion.png when the metrics hold a confusion matrix) from
    `metrics` or run_dir/metrics.json; returns the paths written."""
    if metrics is None:
        path = os.path.join(run_dir, "metrics.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no metrics.json in {run_dir}")
        with open(path) as f:
            metrics = json.load(f)
    written = [plot_curves(metrics, os.path.join(run_dir, "curves.png"))]
    if isinstance(metrics, dict) and metrics.get("confusion_matrix"):
        written.append(plot_confusion(metrics["confusion_matrix"], os.path.join(run_dir, "confusion.png"),
                                      metrics.get("classes")))
    return written
