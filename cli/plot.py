"""onnx-run plot: training curves (and a confusion matrix) from DIR/metrics.json, drawn by
onnxkit.plotting (matplotlib, optional: without it the command says how to install it and exits 2)."""
import os

import click

from .serve import need_extra


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
    from onnxkit.plotting import plot_run
    written = plot_run(run_dir)
    click.echo(f"wrote {', '.join(written)}")
