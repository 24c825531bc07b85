"""onnx-run train: the config-driven workflow (onnxkit.workflow) from the command line: validate the
JSON/YAML config, train with a progress bar and per-epoch metrics, checkpoint each epoch, export.
A bad config is one `error: config: KEY: ...` line and exit 2; Ctrl-C stops after leaving the last
epoch's checkpoint (exit 130), and `--resume` continues from it."""
import os

import click


@click.command("train")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out_dir", default=None, metavar="DIR",
              help="Run folder (default: runs/<config name>).")
@click.option("--resume", is_flag=True, help="Continue the run in DIR from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
def command(config, out_dir, resume, quiet):
    """Train the model a config describes and export it: DIR/model.onnx, DIR/training/ (training
    artifacts), DIR/metrics.json, DIR/curves.png (and DIR/confusion.png for classifiers), with a
    checkpoint after each epoch. Configs and their keys: docs/workflow.md.

    \b
    Example:
      onnx-run train models/configs/lstm_digits_rows.json -o runs/lstm
      onnx-run serve runs/lstm/model.onnx
    """
    from onnxkit import workflow
    cfg = workflow.load_config(config)
    out_dir = out_dir or os.path.join("runs", cfg["name"])
    try:
        metrics = workflow.train(cfg, out_dir, resume=resume, progress=not quiet)
    except workflow.Interrupted as e:
        click.echo(f"error: {e}", err=True)
        raise click.exceptions.Exit(130) from None
    m = metrics["metric"]
    click.echo(f"{metrics['name']}: test {m} {metrics['test'][m]:.4f} (onnxruntime {metrics['onnx_test'][m]:.4f}) "
               f"after {metrics['epochs']} epochs; wrote {os.path.join(out_dir, 'model.onnx')}")
