"""`onnx-run serve` under a bounded loopback load, against a raw onnxruntime loop in the same run.

Two models exported by onnxkit: LeNet-5 (1x28x28, ~0.03 ms a run) and a wide MLP
(1024-4096-4096-4096-1000, 42 M parameters, 170 MB of float32 weights; a batch-1 run takes ~3.5 ms
on 2 idle cores and is bound by reading the weights, the case dynamic batching is for: recommenders,
LLM decoding). `--models resnet` adds a CIFAR ResNet-20
(width 32, ~2+ ms at batch 1, compute-bound: batching gives little on a CPU; its raw onnxruntime
batch-32 line says how much at most).

For each model: a raw onnxruntime loop (ok.Session.run at batch 1, the server's own session options,
in this process while the servers are idle), then two `onnx-run serve` subprocesses on free
127.0.0.1 ports, one with dynamic batching (--max-batch 32) and one with --max-batch 1, loaded in
turn by 1, 8 and 32 closed-loop clients for --seconds per setting, split into --slices slices that
alternate between the two servers (each after a short untimed warm-up), so load from elsewhere on
the machine hits both alike. At one client each request is paired with a raw onnxruntime run just
before it, in this process: the latency target compares medians of these interleaved pairs. Clients are
coroutines of one asyncio loop in this process (a separate process from the server) on keep-alive
HTTP/1.1 connections, sending Triton's binary-tensor extension (as tritonclient.http does by default)
or JSON with --json-tensors. Every response is checked for status 200 and the output's byte size;
the first of each setting against onnxruntime's output (rtol 1e-4). The server is always stopped
(SIGINT, then kill), on errors and Ctrl+C too. Traffic goes only to 127.0.0.1.

Prints requests/s, p50/p99 latency and errors per setting, and the issue's targets:
  * p50 at 1 client <= raw onnxruntime p50 + 1 ms (both servers),
  * the MLP at 32 clients: dynamic batching >= 2x the requests/s of --max-batch 1,
  * 0 errors.

Run:  python bench/serve.py                            (3 s per setting, about a minute)
      python bench/serve.py --seconds 20 --slices 4    (the issue's figure, about 6 minutes)
"""
import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

import onnxkit as ok
from onnxkit import nn

CLIENTS = (1, 8, 32)


# ----- models -----------------------------------------------------------------------------------------
def build_models(which, directory):
    """{key: (path, description, input shape without the batch dim)}."""
    from onnxkit.models.lenet import LeNet5
    from onnxkit.models.resnet import ResNet
    ok.manual_seed(0)
    specs = {
        "lenet": (lambda: LeNet5(), (1, 28, 28), "LeNet-5"),
        "mlp": (lambda: nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                      nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000)),
                (1024,), "MLP 1024-4096-4096-4096-1000"),
        "resnet": (lambda: ResNet(20, 32, 3), (3, 32, 32), "ResNet-20 w32"),
    }
    out = {}
    for key in which:
        make, shape, desc = specs[key]
        path = os.path.join(directory, f"{key}.onnx")
        ok.export(make().eval(), [ok.Input("x", ("N", *shape))], path=path)
        out[key] = (path, desc, shape)
    return out


# ----- raw onnxruntime -----------------------------------------------------------------------------------
def raw_loop(sess, x, seconds):
    """Per-call latencies (s) of sess.run({"x": x}) for `seconds` after a short warm-up."""
    feeds = {"x": x}
    for _ in range(5):
        sess.run(feeds)
    times, end = [], time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        sess.run(feeds)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 > end:
            return np.array(times)


# ----- the server -------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m onnxkit.cli serve` as a subprocess on 127.0.0.1; stopped with SIGINT, then kill."""

    def __init__(self, path, name, max_batch, max_delay_ms):
        self.port = free_port()
        self.cmd = [sys.executable, "-m", "onnxkit.cli", "serve", path, "--host", "127.0.0.1", "--port",
                    str(self.port), "--name", name, "--max-batch", str(max_batch), "--max-delay-ms",
                    str(max_delay_ms), "--device", "cpu"]
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 60
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {self.proc.stderr.read().strip()}")
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                        s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                        if s.recv(64).startswith(b"HTTP/1.1 200"):
                            return self
                except OSError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError("the server did not get ready within 60 s")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc):
        self.stop()


# ----- the load -----------------------------------------------------------------------------------------------
def make_request(name, x, json_tensors):
    """Bytes of one keep-alive POST /v2/models/NAME/infer with `x` as input "x", binary output."""
    if json_tensors:
        body = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                       "data": x.ravel().tolist()}],
                           "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
        extra = ""
    else:
        raw = x.tobytes()
        head = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
        body = head + raw
        extra = f"Inference-Header-Content-Length: {len(head)}\r\n"
    return (f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader):
    """(status, headers {lower name: value}, body) of one HTTP/1.1 response with Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


def output_of(headers, body):
    """The binary output tensor of a response."""
    n = int(headers["inference-header-content-length"])
    head = json.loads(body[:n])
    (out,) = head["outputs"]
    return np.frombuffer(body[n:], np.float32).reshape(out["shape"])


async def client(port, request, out_bytes, stop_at, warm_until, lat, errors, first, check, raw=None):
    """One closed-loop client on a keep-alive connection. With `raw` (one client only), each request
    is preceded by one raw onnxruntime run, timed into raw.times: paired, interleaved samples."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            if raw is not None:
                r0 = time.perf_counter()
                raw.run()
                if r0 >= warm_until:
                    raw.times.append(time.perf_counter() - r0)
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            writer.write(request)
            try:
                status, headers, body = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                errors.append(f"connection: {e!r}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            t1 = time.perf_counter()
            n = int(headers.get("inference-header-content-length", -1))
            if status != 200 or n < 0 or len(body) - n != out_bytes:
                errors.append(f"status {status}: {body[:200]!r}")
                continue
            if not first[0]:
                check(output_of(headers, body))
            first[0] += 1
            if t0 >= warm_until:
                lat.append(t1 - t0)
    finally:
        writer.close()


class RawRuns:
    def __init__(self, sess, x):
        self.sess, self.feeds, self.times = sess, {"x": x}, []

    def run(self):
        self.sess.run(self.feeds)


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port, request, out_bytes, clients, seconds, warmup, check, raw=None, server_pid=None):
    """(latencies in s, errors, measured seconds, client and server CPU s per request) of `clients`
    closed-loop clients; CPU over the whole setting, warm-up included (the client's includes the
    paired raw runs at one client)."""
    lat, errors, first = [], [], [0]  # first[0]: answered requests, warm-up included
    start = time.perf_counter()
    cpu0, scpu0 = time.process_time(), cpu_seconds(server_pid) if server_pid else 0.0
    warm_until, stop_at = start + warmup, start + warmup + seconds
    await asyncio.gather(*(client(port, request, out_bytes, stop_at, warm_until, lat, errors, first, check, raw)
                           for _ in range(clients)))
    wall = time.perf_counter() - warm_until
    cpu = time.process_time() - cpu0
    scpu = (cpu_seconds(server_pid) - scpu0) if server_pid else float("nan")
    return np.array(lat), errors, wall, cpu / max(first[0], 1), scpu / max(first[0], 1)


def stats(lat, seconds):
    if len(lat) == 0:
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "n": 0}
    return {"rps": len(lat) / seconds, "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3), "n": len(lat)}


def line(label, s, errors=0):
    return (f"  {label:<28} {s['rps']:9.1f} req/s   p50 {s['p50_ms']:8.3f} ms   p99 {s['p99_ms']:8.3f} ms"
            f"   errors {errors}")


# ----- main -------------------------------------------------------------------------------------------------------
def bench_model(key, path, desc, shape, args):
    sess = ok.Session(path, device="cpu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, *shape)).astype(np.float32)
    want = sess.run({"x": x})["output"]
    out_bytes = want.nbytes
    print(f"\n{desc} ({key}.onnx), batch-1 requests, {args.seconds:g} s per setting")
    raw = raw_loop(sess, x, args.seconds)
    raw_s = {"rps": len(raw) / raw.sum(), "p50_ms": float(np.median(raw) * 1e3),
             "p99_ms": float(np.percentile(raw, 99) * 1e3)}
    print(line("raw onnxruntime, batch 1", raw_s))
    if key != "lenet" and raw_s["p50_ms"] < 2.0:
        print("  (note: the batch-1 run took under 2 ms here; the issue asks for a model of at least 2 ms)")
    xb = np.repeat(x, args.max_batch, 0)
    rawb = raw_loop(sess, xb, min(args.seconds, 2.0))
    print(f"  raw onnxruntime, batch {args.max_batch:<3}  {args.max_batch / np.median(rawb):9.1f} rows/s   "
          f"(the most batching can give: {args.max_batch * np.median(raw) / np.median(rawb):.2f}x batch 1)")

    def check(y):
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)

    request = make_request(key, x, args.json_tensors)
    configs = (args.max_batch, 1)
    labels = {mb: f"max-batch {mb}" + (f", {args.max_delay_ms:g} ms" if mb > 1 else "") for mb in configs}
    results = {}
    with contextlib.ExitStack() as stack:  # both servers up at once, loaded in turn (the idle one sleeps)
        servers = {mb: stack.enter_context(Server(path, key, mb, args.max_delay_ms)) for mb in configs}
        for c in args.clients:
            acc = {mb: {"lat": [], "errors": [], "wall": 0.0, "cpu": [], "scpu": [], "raw": []} for mb in configs}
            for i in range(args.slices):  # interleaved slices, the order alternating
                for mb in (configs if i % 2 == 0 else configs[::-1]):
                    raw = RawRuns(sess, x) if c == 1 else None
                    lat, errors, wall, cpu, scpu = asyncio.run(load(
                        servers[mb].port, request, out_bytes, c, args.seconds / args.slices, args.warmup, check, raw,
                        servers[mb].proc.pid))
                    a = acc[mb]
                    a["lat"].append(lat), a["errors"].extend(errors), a["cpu"].append(cpu), a["scpu"].append(scpu)
                    a["wall"] += wall
                    if raw is not None:
                        a["raw"].extend(raw.times)
            for mb in configs:
                a = acc[mb]
                st = stats(np.concatenate(a["lat"]), a["wall"])
                st["errors"] = len(a["errors"])
                if a["raw"]:
                    st["raw_p50_ms"] = float(np.median(a["raw"]) * 1e3)
                results[(mb, c)] = st
                print(line(f"serve {labels[mb]}, {c:>2} clients", st, st["errors"])
                      + f"   CPU/request: server {np.median(a['scpu']) * 1e3:.2f} ms, "
                        f"client {np.median(a['cpu']) * 1e3:.2f} ms"
                      + ("" if not a["raw"] else f"   (paired raw p50 {st['raw_p50_ms']:.3f} ms)"))
                for e in a["errors"][:3]:
                    print(f"    error: {e}")
    return raw_s, results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per setting (the issue: 20)")
    p.add_argument("--warmup", type=float, default=0.5, help="untimed seconds before each slice")
    p.add_argument("--slices", type=int, default=2,
                   help="each setting's seconds are split into this many slices, the two servers alternating")
    p.add_argument("--models", default="lenet,mlp", help="comma-separated: lenet, mlp, resnet")
    p.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="concurrent clients per setting")
    p.add_argument("--max-batch", type=int, default=32, help="the batching server's --max-batch")
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="the batching server's --max-delay-ms")
    p.add_argument("--json-tensors", action="store_true", help="JSON tensors instead of the binary extension")
    args = p.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    print(f"{os.cpu_count()} cores; server: onnx-run serve subprocess; clients: asyncio keep-alive HTTP/1.1 in this "
          f"process, {'JSON' if args.json_tensors else 'binary-tensor'} requests")
    failures, total_errors = [], 0
    with tempfile.TemporaryDirectory() as d:
        models = build_models(args.models.split(","), d)
        for key, (path, desc, shape) in models.items():
            raw_s, res = bench_model(key, path, desc, shape, args)
            total_errors += sum(s["errors"] for s in res.values())
            for mb in (args.max_batch, 1):
                if (mb, 1) in res:
                    over = res[(mb, 1)]["p50_ms"] - res[(mb, 1)]["raw_p50_ms"]
                    ok_ = over <= 1.0
                    print(f"  target p50 at 1 client <= paired raw p50 + 1 ms (max-batch {mb}): {over:+.3f} ms  "
                          f"{'met' if ok_ else 'MISSED'}")
                    failures += [] if ok_ else [f"{key} p50 max-batch {mb}"]
            c = max(args.clients)
            if (1, c) in res and res[(1, c)]["rps"] > 0:
                ratio = res[(args.max_batch, c)]["rps"] / res[(1, c)]["rps"]
                print(f"  dynamic batching / max-batch 1 at {c} clients: {ratio:.2f}x"
                      + (f"  (target >= 2x: {'met' if ratio >= 2 else 'MISSED'})" if key == "mlp" else ""))
                if key == "mlp" and ratio < 2:
                    failures.append(f"{key} batching {ratio:.2f}x")
    print(f"\nerrors: {total_errors}" + ("" if total_errors == 0 else "  (target 0: MISSED)"))
    print("targets: " + ("all met" if not failures and total_errors == 0 else "missed: " + ", ".join(failures)))
    return 0


def _sigterm(signum, frame):
    raise KeyboardInterrupt  # so the `with Server` blocks stop the server on SIGTERM too


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
