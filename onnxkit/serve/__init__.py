"""The Open Inference Protocol (KServe v2) server behind `onnx-run serve`, an optional extra
(`pip install onnxkit[serve]`: Starlette on uvicorn). `create_app(model, name)` builds the ASGI app;
`serve(model, name, host=..., port=...)` runs it."""


def create_app(*args, **kwargs):
    from .app import create_app as _create_app
    return _create_app(*args, **kwargs)


def serve(*args, **kwargs):
    from .app import serve as _serve
    return _serve(*args, **kwargs)


__all__ = ["create_app", "serve"]
