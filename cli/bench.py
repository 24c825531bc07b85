"""onnx-run bench: latency percentiles and throughput of a model's onnxruntime run, inputs bound once
through IOBinding so the figure is the model's, not the feed copy's."""
import sys
import time

import click
import numpy as np

from ._common import DEVICES, dim_option, emit_json, json_option, model_argument, parse_dims, random_feeds
from ._model import read_model, session


def measure(sess, feeds, runs, warmup, progress=False):
    """Per-run wall times in ms of `runs` IOBinding runs after `warmup` untimed ones."""
    import onnxruntime as ort
    ort_sess = sess.ort_session
    dev = "cuda" if sess.device == "cuda" else "cpu"
    binding = ort_sess.io_binding()
    for name, v in sess.check_feeds(feeds).items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(v), dev, 0))
    for name in sess.output_names:
        binding.bind_output(name, dev)
    for _ in range(warmup):
        ort_sess.run_with_iobinding(binding)
    times = []
    steps = range(runs)
    bar = click.progressbar(steps, label="bench", file=sys.stderr) if progress else None
    with (bar or _null(steps)) as it:
        for _ in it:
            t0 = time.perf_counter()
            ort_sess.run_with_iobinding(binding)
            times.append((time.perf_counter() - t0) * 1e3)
    return np.array(times)


class _null:
    def __init__(self, it):
        self.it = it

    def __enter__(self):
        return self.it

    def __exit__(self, *exc):
        return False


@click.command("bench")
@model_argument
@dim_option
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Size of each input's symbolic first dim.")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True, help="Timed runs.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed runs first.")
@click.option("--device", default="auto", type=DEVICES, show_default=True)
@json_option
def command(model, dims, batch, runs, warmup, device, as_json):
    """Time MODEL on random inputs: p50/p90/p99/mean latency and throughput (runs/s x the first
    input's dim 0). Inputs and outputs stay bound on the device between runs (IOBinding).

    \b
    Example:
      onnx-run bench lenet.onnx --batch 32 --runs 500
      onnx-run bench model.onnx --dim seq=128 --device cuda --json
    """
    sess = session(read_model(model), device, model)
    feeds = random_feeds(sess, {}, parse_dims(dims), batch)
    t = measure(sess, feeds, runs, warmup, progress=not as_json and sys.stderr.isatty())
    first = next(iter(feeds.values()), None)
    rows = int(first.shape[0]) if first is not None and first.ndim else 1
    mean = float(t.mean())
    result = {"p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
              "p99_ms": float(np.percentile(t, 99)), "mean_ms": mean, "runs": runs, "device": sess.device,
              "throughput_per_s": (1e3 / mean) * rows if mean > 0 else None}
    if as_json:
        emit_json(result)
        return
    click.echo(f"{model} on {sess.device}: {runs} runs after {warmup} warm-up")
    click.echo(f"  p50 {result['p50_ms']:.3f} ms  p90 {result['p90_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
               f"mean {mean:.3f} ms")
    click.echo(f"  throughput {result['throughput_per_s']:.1f}/s (batch {rows})")
