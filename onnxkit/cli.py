"""The `onnx-run` command line: inspect and run ONNX models. Bad input prints one line and
exits 2; --debug shows the traceback."""
import os
import sys

import click
import numpy as np


class _Group(click.Group):
    """Turns any error into one `error: ...` line and exit code 2 (unless --debug)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.pass_context
def main(ctx, debug):
    """onnx-run: inspect and run ONNX models with onnxruntime."""
    ctx.obj = {"debug": debug}


@main.command()
def version():
    """Print onnxkit, onnx and onnxruntime versions."""
    import onnx
    import onnxruntime
    import onnxkit
    click.echo(f"onnxkit {onnxkit.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")


def _parse_feed(spec):
    """NAME=FILE.npy -> (name, array); never unpickles."""
    if "=" not in spec:
        raise click.BadParameter(f"--input expects NAME=FILE.npy, got {spec!r}")
    name, path = spec.split("=", 1)
    return name, np.load(path, allow_pickle=False)


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, help="NAME=FILE.npy; random data for inputs not given.")
@click.option("--batch", default=1, show_default=True, help="Size for symbolic dims of random inputs.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), show_default=True)
@click.option("--save", "save_dir", type=click.Path(file_okay=False), help="Write each output as NAME.npy here.")
@click.option("--seed", default=0, show_default=True)
def run(model, inputs, batch, device, save_dir, seed):
    """Run MODEL once and print each output's shape, dtype and summary statistics."""
    from .runtime import Session, _ORT_TYPES
    sess = Session(model, device=device)
    feeds = dict(_parse_feed(s) for s in inputs)
    rng = np.random.default_rng(seed)
    for name, typ, shape in sess.inputs:
        if name in feeds:
            continue
        dims = [d if isinstance(d, int) else batch for d in shape]
        dt = _ORT_TYPES.get(typ, np.dtype(np.float32))
        feeds[name] = rng.standard_normal(dims).astype(dt) if dt.kind == "f" else np.zeros(dims, dt)
    out = sess.run(feeds)
    click.echo(f"ran {os.path.basename(model)} on {sess.device}")
    for name, v in out.items():
        summary = f" mean={v.mean():.6g} min={v.min():.6g} max={v.max():.6g}" if v.size and v.dtype.kind == "f" else ""
        click.echo(f"  {name}: shape={tuple(v.shape)} dtype={v.dtype}{summary}")
        if save_dir:
            os.makedirs(save_dir, exist_ok=True)
            np.save(os.path.join(save_dir, f"{name}.npy"), v)


if __name__ == "__main__":
    main()
