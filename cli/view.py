"""onnx-run view: the model's graph in Netron (an optional extra), served on 127.0.0.1."""
import click

from ._model import read_model
from .serve import need_extra


@click.command("view")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--browse/--no-browse", default=True, show_default=True, help="Open a web browser.")
def command(model, port, browse):
    """Open MODEL in Netron on http://127.0.0.1:PORT until Ctrl+C. Needs `pip install 'onnxkit[view]'`.

    \b
    Example:
      onnx-run view model.onnx --port 8081
    """
    need_extra(["netron"], "view", "onnx-run view")
    import netron
    read_model(model)  # one-line errors, external data checked, before Netron sees the file
    netron.start(model, address=("127.0.0.1", port), browse=browse)
    click.echo(f"Netron shows {model} on http://127.0.0.1:{port}; Ctrl+C stops", err=True)
    try:
        netron.wait()
    except KeyboardInterrupt:
        pass
    finally:
        netron.stop(("127.0.0.1", port))
