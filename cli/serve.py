"""onnx-run serve: the model behind the Open Inference Protocol (KServe v2), onnxkit.serve."""
import importlib.util
import os

import click

from ._model import read_model, validate


def need_extra(modules, extra, what):
    """A one-line error naming the extra to install when an optional dependency is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(f"{what} needs {', '.join(missing)}: pip install 'onnxkit[{extra}]'")


def check_bindable(host, port):
    """A clear one-line error for an address in use or not local, before the model is loaded."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(infos[0][4])
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


@click.command("serve")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--name", default=None, help="Model name in URLs (default: the file name without .onnx).")
@click.option("--max-body-mb", default=16.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Larger request bodies get 413.")
@click.option("--max-batch", default=1, show_default=True, type=click.IntRange(min=1),
              help="Dynamic batching: run up to this many rows of concurrent requests together.")
@click.option("--max-delay-ms", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="How long a request may wait for others to batch with.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]), show_default=True)
def command(model, host, port, name, max_body_mb, max_batch, max_delay_ms, device):
    """Serve MODEL over the Open Inference Protocol (KServe v2, as Triton and MLServer speak it), so
    tritonclient.http and KServe clients work unchanged. Needs `pip install 'onnxkit[serve]'`.

    \b
    Endpoints: GET /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready;
               POST /v2/models/NAME/infer  {"inputs": [{"name","shape","datatype","data"}]}
    Example:
      onnx-run serve lenet.onnx --name lenet --port 8000 --max-batch 32 --max-delay-ms 2
      curl -s localhost:8000/v2/models/lenet
    """
    need_extra(["starlette", "uvicorn"], "serve", "onnx-run serve")
    from onnxkit.serve import serve
    check_bindable(host, port)
    proto = read_model(model)
    validate(proto, model)
    name = name or os.path.splitext(os.path.basename(model))[0]

    def announce(app):
        batching = "on" if app.state.batching else "off"
        click.echo(f"serving {name!r} ({os.path.basename(model)}, {app.state.served.session.device}) on "
                   f"http://{host}:{port}/v2/models/{name} (dynamic batching {batching}); Ctrl+C stops", err=True)

    serve(proto, name, host=host, port=port, device=device, max_body_bytes=int(max_body_mb * (1 << 20)),
          max_batch=max_batch, max_delay_ms=max_delay_ms, on_ready=announce)
