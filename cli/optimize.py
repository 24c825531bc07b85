"""onnx-run optimize: a thin shell over onnxkit.optimize."""
import os

import click
import onnx

from onnxkit.optimize import LEVELS, node_count, optimize
from ._common import emit_json, json_option, model_argument
from ._model import read_model, validate


@click.command("optimize")
@model_argument
@click.option("-o", "--output", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write.")
@click.option("--level", type=click.Choice(list(LEVELS)), default="basic", show_default=True,
              help="basic: standard ops only; extended/all: may write com.microsoft fused ops (onnxruntime only).")
@click.option("--opset", type=click.IntRange(min=7), default=None, help="Convert to this default-domain opset first.")
@json_option
def command(model, out_path, level, opset, as_json):
    """Optimize MODEL into OUT: constant folding, Identity/Dropout and dead-node removal, BatchNorm
    folded into Conv, and more (onnxruntime's offline optimizer at --level), after an optional opset
    conversion. OUT passes `check`, has no more nodes and gives the same outputs (rtol 1e-4).

    \b
    Example:
      onnx-run optimize model.onnx -o model.opt.onnx
      onnx-run optimize model.onnx -o model.o21.onnx --opset 21
    """
    src = read_model(model)
    validate(src, model)
    out, notes = optimize(src, level, opset)
    tmp = out_path + ".tmp"
    onnx.save(out, tmp)
    os.replace(tmp, out_path)
    before, after = node_count(src), node_count(out)
    if as_json:
        emit_json({"output": out_path, "level": level, "nodes_before": before, "nodes_after": after, "notes": notes})
        return
    click.echo(f"{os.path.basename(model)}: {before} -> {after} nodes ({level}"
               + "".join(f"; {n}" for n in notes) + f"), wrote {out_path}")
