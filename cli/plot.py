"""onnx-run plot: training curves (and a confusion matrix) from DIR/metrics.json, with matplotlib
(optional: without it the command says how to install it and exits 2)."""
import json
import os

import click

from .serve import need_extra


def curves(metrics):
    """{name: [per-epoch values]} from metrics.json: a Trainer history {"loss": [...], ...}, the same
    under "history", or a list of per-epoch records."""
    h = metrics.get("history", metrics) if isinstance(metrics, dict) else metrics
    if isinstance(h, list):
        keys = [k for r in h if isinstance(r, dict) for k in r if k != "epoch"]
        return {k: [r.get(k) for r in h] for k in dict.fromkeys(keys)}
    return {k: v for k, v in h.items() if isinstance(v, list) and v and all(isinstance(x, (int, float)) or x is None
                                                                            for x in v)}


@click.command("plot")
@click.argument("run_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def command(run_dir):
    """Draw DIR/curves.png from DIR/metrics.json (per-epoch loss and metrics), and DIR/confusion.png
    when it holds a "confusion_matrix". Needs matplotlib.

    \b
    Example:
      onnx-run plot runs/lenet
    """
    need_extra(["matplotlib"], "plot", "onnx-run plot")
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no metrics.json in {run_dir}")
    with open(path) as f:
        try:
            metrics = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = curves(metrics)
    if not series:
        raise ValueError(f"{path} has no per-epoch series to plot")
    losses = {k: v for k, v in series.items() if "loss" in k}
    others = {k: v for k, v in series.items() if "loss" not in k}
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for k, v in panel.items():
            ax.plot(range(1, len(v) + 1), [float("nan") if x is None else x for x in v], marker="o", label=k)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "curves.png"), dpi=100)
    plt.close(fig)
    written = ["curves.png"]
    cm = metrics.get("confusion_matrix") if isinstance(metrics, dict) else None
    if cm:
        fig, ax = plt.subplots(figsize=(5, 5))
        im = ax.imshow(cm, cmap="Blues")
        fig.colorbar(im, ax=ax)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.tight_layout()
        fig.savefig(os.path.join(run_dir, "confusion.png"), dpi=100)
        plt.close(fig)
        written.append("confusion.png")
    click.echo(f"wrote {', '.join(os.path.join(run_dir, w) for w in written)}")
