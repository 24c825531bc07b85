"""onnx-run run: run a model once on given or random inputs, summarize and save the outputs."""
import os
import time

import click
import numpy as np

from ._common import (DEVICES, dim_option, emit_json, finite, format_shape, json_option, load_feeds, model_argument,
                      parse_dims, random_feeds, table)
from ._model import read_model, session


def summary(v):
    """{"shape","dtype","mean","min","max"} of an output (statistics None where they do not apply)."""
    v = np.asarray(v)
    numeric = v.size > 0 and v.dtype.kind in "biuf"
    stats = {k: finite(f(v.astype(np.float64))) if numeric else None
             for k, f in (("mean", np.mean), ("min", np.min), ("max", np.max))}
    return {"shape": list(v.shape), "dtype": v.dtype.name, **stats}


@click.command("run")
@model_argument
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=FILE.npy|FILE.npz",
              help="An input from a .npy file, or all inputs from an .npz; random (seeded) data for the rest.")
@dim_option
@click.option("--batch", type=click.IntRange(min=0), default=None, help="Size of each random input's symbolic first dim.")
@click.option("--device", default="auto", type=DEVICES, show_default=True)
@click.option("--save", "save_dir", type=click.Path(file_okay=False), help="Write each output as DIR/<name>.npy.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
@json_option
def command(model, inputs, dims, batch, device, save_dir, seed, as_json):
    """Run MODEL once and print each output's shape, dtype and statistics.

    Inputs not given are random: --batch sets symbolic first dims, --dim NAME=SIZE any named dim,
    other named dims are 1.

    \b
    Example:
      onnx-run run mlp.onnx --batch 8
      onnx-run run mlp.onnx -i x=x.npy --save out/ --json
    """
    sess = session(read_model(model), device, model)
    feeds = random_feeds(sess, load_feeds(inputs), parse_dims(dims), batch, seed)
    t0 = time.perf_counter()
    out = sess.run(feeds)
    ms = (time.perf_counter() - t0) * 1e3
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
        for name, v in out.items():
            np.save(os.path.join(save_dir, f"{_safe_name(name)}.npy"), v)
    stats = {name: summary(v) for name, v in out.items()}
    if as_json:
        emit_json({"outputs": stats})
        return
    click.echo(f"ran {os.path.basename(model)} on {sess.device} in {ms:.2f} ms")
    rows = [(name, format_shape(s["shape"]), s["dtype"], *("-" if s[k] is None else f"{s[k]:.6g}"
                                                         for k in ("mean", "min", "max"))) for name, s in stats.items()]
    click.echo(table(rows, ("output", "shape", "dtype", "mean", "min", "max")))
    if save_dir:
        click.echo(f"saved {len(out)} output(s) to {save_dir}")


def _safe_name(name):
    """An output name as a file name inside DIR (no separators, no `..`)."""
    s = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return s or "output"
