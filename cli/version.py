"""onnx-run version: the versions that matter when reporting a problem."""
import click


@click.command("version")
def command():
    """Print onnxkit, onnx and onnxruntime versions.

    \b
    Example:
      onnx-run version
    """
    import onnx
    import onnxruntime
    import onnxkit
    click.echo(f"onnxkit {onnxkit.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")
