"""onnx-run check: is this model valid? onnx.checker (full), strict shape inference, onnxruntime load."""
import os

import click

from ._common import emit_json, json_option, model_argument
from ._model import _one_line, problems, read_model, watchdog


def check_model(model):
    """Every problem found; onnxruntime loads the model only when onnx's own checks pass, so a
    malformed graph never reaches its C++ loader in this process."""
    import onnxkit as ok
    with watchdog("checking the model"):
        errors = problems(model)
    if not errors:
        with watchdog("loading the model into onnxruntime"):
            try:
                ok.Session(model, device="cpu")
            except Exception as e:  # noqa: BLE001
                errors.append(f"onnxruntime: {_one_line(e)}")
    return errors


@click.command("check")
@model_argument
@json_option
@click.pass_context
def command(ctx, model, as_json):
    """Validate MODEL: onnx.checker (full), strict shape inference and an onnxruntime load; list every
    problem. Exit 0 when valid, 1 when invalid, 2 when the file cannot be read.

    \b
    Example:
      onnx-run check model.onnx && echo ok
      onnx-run check model.onnx --json
    """
    errors = check_model(read_model(model))
    if as_json:
        emit_json({"valid": not errors, "errors": errors})
    else:
        click.echo(f"{'valid' if not errors else 'invalid'}: {os.path.basename(model)}")
        for e in errors:
            click.echo(f"  {e}")
    if errors:
        ctx.exit(1)
