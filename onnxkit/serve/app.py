"""The Open Inference Protocol (KServe v2) over HTTP as a Starlette app on uvicorn:
health, server and model metadata, readiness, statistics and inference (JSON tensors and Triton's
binary-tensor extension), with a body-size limit, request validation (4xx + {"error": reason},
the server keeps serving) and dynamic batching. Binds 127.0.0.1 unless told otherwise."""
import contextlib

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .batcher import DynamicBatcher
from .model import ServedModel
from .protocol import HEADER_LENGTH, BadRequest, decode_inputs, encode_response, requested_outputs, split_body


def error(reason, status=400):
    return JSONResponse({"error": reason}, status_code=status)


async def read_body(request, limit):
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BadRequest("bad Content-Length")
        if int(length) > limit:
            raise BadRequest(f"the body of {int(length)} bytes is over the limit of {limit} bytes", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body is over the limit of {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model, name="model", *, device="auto", max_body_bytes=16 << 20, max_batch=1, max_delay_ms=2.0):
    """A Starlette app serving `model` (a path or onnx.ModelProto already read safely) as `name`.
    max_batch > 1 turns on dynamic batching when the model's first dims are symbolic."""
    import onnxkit
    served = ServedModel(model, name, device)
    batcher = DynamicBatcher(served, max_batch, max_delay_ms / 1e3) if max_batch > 1 and served.batchable else None

    def model_or_404(request):
        if request.path_params["name"] != name:
            raise BadRequest(f"unknown model {request.path_params['name']!r}; this server has {name!r}", 404)
        version = request.path_params.get("version")
        if version not in (None, "", "1"):
            raise BadRequest(f"unknown version {version!r} of model {name!r}; it has version '1'", 404)
        return served

    async def live(request):
        return JSONResponse({"live": True})

    async def ready(request):
        return JSONResponse({"ready": True})

    async def server_metadata(request):
        return JSONResponse({"name": "onnxkit", "version": onnxkit.__version__, "extensions": ["binary_tensor_data"]})

    async def model_metadata(request):
        return JSONResponse(model_or_404(request).metadata())

    async def model_ready(request):
        model_or_404(request)
        return JSONResponse({"name": name, "ready": True})

    async def model_config(request):
        m = model_or_404(request)
        return JSONResponse({"name": name, "platform": "onnxruntime_onnx", "backend": "onnxruntime",
                             "max_batch_size": max_batch if batcher else 0,
                             "dynamic_batching": {"max_queue_delay_microseconds": int(max_delay_ms * 1e3)}
                             if batcher else None,
                             "input": [{"name": n, "data_type": f"TYPE_{dt}", "dims": d}
                                       for n, (dt, d, _) in m.inputs.items()],
                             "output": [{"name": n, "data_type": f"TYPE_{dt}", "dims": d}
                                        for n, (dt, d, _) in m.outputs.items()]})

    async def model_stats(request):
        m = model_or_404(request)
        return JSONResponse({"model_stats": [{"name": name, "version": "1", **m.stats}]})

    async def infer(request):
        m = model_or_404(request)
        if batcher is not None:
            batcher.arriving += 1  # tells the batcher another request is on its way
        try:
            body = await read_body(request, max_body_bytes)
            req, tail = split_body(body, request.headers.get(HEADER_LENGTH))
            feeds = decode_inputs(req, tail, m.expected)
            chosen = requested_outputs(req, list(m.outputs))
        finally:
            if batcher is not None:
                batcher.arriving -= 1
        if batcher is not None:
            results = await batcher.submit(feeds)
        else:
            results = await anyio.to_thread.run_sync(m.run, feeds)
        rid = req.get("id")
        content, header_len = encode_response(name, results, chosen, rid if isinstance(rid, str) else None)
        if header_len is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header_len)})

    async def on_bad_request(request, exc):
        return error(str(exc), exc.status)

    async def on_http_exception(request, exc):
        return error(exc.detail or "bad request", exc.status_code)

    async def on_disconnect(request, exc):
        return Response(status_code=499)

    async def on_unexpected(request, exc):
        return error(f"internal error: {type(exc).__name__}: {exc}", 500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if batcher is not None:
            batcher.start()
        yield
        if batcher is not None:
            await batcher.stop()

    m_ = "/v2/models/{name}"
    v_ = "/v2/models/{name}/versions/{version}"
    routes = [Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server_metadata)]
    for base in (m_, v_):
        routes += [Route(base, model_metadata), Route(base + "/ready", model_ready),
                   Route(base + "/config", model_config), Route(base + "/stats", model_stats),
                   Route(base + "/infer", infer, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={BadRequest: on_bad_request, HTTPException: on_http_exception,
                                        ClientDisconnect: on_disconnect, Exception: on_unexpected})
    app.state.served = served
    app.state.batching = batcher is not None
    return app


def _server_class():
    import signal
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's Server that, on SIGINT/SIGTERM, finishes in-flight requests and returns
        normally (uvicorn's own handler re-raises the signal afterwards, which ends in a traceback)."""

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (signal.SIGINT, signal.SIGTERM)
            old = {s: signal.signal(s, self.handle_exit) for s in sigs}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

        def handle_exit(self, sig, frame):
            self.should_exit = True

    return Server


def serve(model, name="model", *, host="127.0.0.1", port=8000, device="auto", max_body_bytes=16 << 20,
          max_batch=1, max_delay_ms=2.0, log_level="warning", on_ready=None):
    """Serve until SIGINT/SIGTERM; uvicorn finishes in-flight requests before it stops (graceful)."""
    import uvicorn
    app = create_app(model, name, device=device, max_body_bytes=max_body_bytes, max_batch=max_batch,
                     max_delay_ms=max_delay_ms)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=10, lifespan="on")
    server = _server_class()(config)
    if on_ready is not None:
        on_ready(app)
    server.run()
