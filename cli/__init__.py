"""onnx-run: inspect, validate, run, benchmark, optimize, view, serve and turn into training graphs
any ONNX model. One module per subcommand; each is a thin shell over onnxkit's Python API.
Installed as `onnxkit.cli` (the top-level cli/ folder, mapped by setuptools' package-dir)."""
import importlib

import click

from ._app import Group

SUBCOMMANDS = ["version", "info", "check", "run", "bench", "optimize", "train_graph", "train", "plot", "view", "serve"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback of an error (exit status stays 2).")
def main(debug):
    """onnx-run: inspect, check, run, benchmark, optimize, view and serve ONNX models.

    \b
    Example:
      onnx-run info model.onnx
      onnx-run run model.onnx --batch 4
    """


for _name in SUBCOMMANDS:  # each module imports its heavy dependencies only when it runs
    main.add_command(importlib.import_module(f"{__name__}.{_name}").command)
