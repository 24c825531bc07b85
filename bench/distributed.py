"""Data-parallel training speed of onnxkit.distributed: steps/s and all-reduce ms/step for 1 and 2
local processes (mpiexec from the mpich wheel, loopback only, 1 onnxruntime intra-op thread per
rank), plus the raw all-reduce of 1/10/100 MB float32 buffers between 2 processes for MPI (mpi4py +
mpich) and torch.distributed gloo (when torch is installed).

Workloads (fixed global batch: with 2 processes each rank computes half of it)
  mlp:     the seed MLP, 1000 -> 100 -> ReLU -> 10, MSELoss, batch 64, SGD momentum 0.9
  lenet:   LeNet-5 on 1x28x28, CrossEntropyLoss, batch 64, SGD momentum 0.9
  resnet8: conv-BN-ReLU + 3 basic residual blocks (16/32/64 channels) on 3x32x32, batch 32, SGD m 0.9
  lstm:    1-layer LSTM (input 32, hidden 256) over 35 steps, last output -> Linear(10), batch 32, Adam

Per workload and process count it prints steps/s and, per step, the gradient-stage, all-reduce and
update-stage milliseconds (rank 0's; the all-reduce figure includes waiting for the slower rank;
"aligned" is the same all-reduce of the gradient buckets timed right after a barrier).
The 1-process row runs the same DistributedTrainer under `mpiexec -n 1` (its all-reduce is a local
no-op copy) and also the gradient stage at B/2, B/8 and 1 rows, so the cost model (printed last,
see docs/distributed.md) can split the compute into a per-call and a per-row part (least squares).
Within a launch the fastest of --repeats blocks of --steps steps is kept, and each row is the
fastest of --runs interleaved launches (the cores are shared with other work: the fastest block is
the least disturbed one).

    python bench/distributed.py [--workloads mlp lenet resnet8 lstm] [--steps 10] [--repeats 6] [--runs 3]
    python bench/distributed.py --allreduce [--reps 20]      # the engine comparison only
    python bench/distributed.py --json                       # one JSON object on stdout
"""
import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
LOOPBACK = {"HYDRA_IFACE": "lo", "UCX_NET_DEVICES": "lo", "UCX_TLS": "self,sm,tcp", "OMP_NUM_THREADS": "1",
            "GLOO_SOCKET_IFNAME": "lo"}
BATCH = {"mlp": 64, "lenet": 64, "resnet8": 32, "lstm": 32}


# ----- workloads ---------------------------------------------------------------------------------
def workload(name):
    """(model, loss, optimizer, x, y) for a global batch."""
    import onnxkit as ok
    from onnxkit import nn, optim
    ok.manual_seed(0)
    rng = np.random.default_rng(0)
    b = BATCH[name]
    if name == "mlp":
        from models.mlp import seed_mlp
        model, loss = seed_mlp(), nn.MSELoss()
        x, y = rng.standard_normal((b, 1000)), rng.standard_normal((b, 10))
    elif name == "lenet":
        from models.lenet import LeNet5
        model, loss = LeNet5(), nn.CrossEntropyLoss()
        x, y = rng.standard_normal((b, 1, 28, 28)), rng.integers(0, 10, b)
    elif name == "resnet8":
        model, loss = resnet8(), nn.CrossEntropyLoss()
        x, y = rng.standard_normal((b, 3, 32, 32)), rng.integers(0, 10, b)
    elif name == "lstm":
        model, loss = LSTMClassifier(), nn.CrossEntropyLoss()
        x, y = rng.standard_normal((b, 35, 32)), rng.integers(0, 10, b)
    else:
        raise ValueError(name)
    if name == "lstm":
        opt = optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    return model, loss, opt, x.astype(np.float32), (y.astype(np.float32) if name == "mlp" else y.astype(np.int64))


def resnet8():
    from onnxkit import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.down is None else self.down(x)))

    return nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def _lstm_classifier_cls():
    from onnxkit import nn

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 256, batch_first=True)
            self.fc = nn.Linear(256, 10)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    return LSTMClassifier


def LSTMClassifier():
    return _lstm_classifier_cls()()


# ----- ranks -------------------------------------------------------------------------------------
def train_worker(name, steps, repeats):
    """Runs under mpiexec: rank 0 prints one JSON line. Blocks of `steps` steps, `repeats` times;
    the fastest block is reported (the cores are shared with other work). With one process, blocks
    at B/2, B/8 and 1 rows are interleaved with the full ones (the cost model's per-call and
    per-row compute)."""
    import onnxkit as ok
    import onnxkit.distributed as dist
    g = dist.init_process_group(timeout=120)
    model, loss, opt, x, y = workload(name)
    t = ok.Trainer(model, loss, opt, distributed=True, seed=0, intra_op_threads=1)
    sizes = [len(y) // 2, len(y) // 8, 1] if g.world_size == 1 else []  # for the cost model's fit
    for _ in range(3):
        t.step(x, y)
    blocks, sub_blocks = [], {b: [] for b in sizes}
    for _ in range(repeats):
        for rows, into in [(len(y), blocks)] + [(b, sub_blocks[b]) for b in sizes]:
            t.reset_timings()
            g.barrier()
            t0 = time.perf_counter()
            for _ in range(steps):
                t.step(x[:rows], y[:rows])
            rate = np.array(steps / (time.perf_counter() - t0))
            g.broadcast(rate, 0)  # every rank picks the same block
            into.append({"steps_per_s": float(rate), **{f"{k}_ms": 1000 * v / t.timed_steps
                                                        for k, v in t.timings.items()}})
    best = max(blocks, key=lambda b: b["steps_per_s"])
    row = {"workload": name, "processes": g.world_size, "global_batch": len(y), **best,
           "steps_per_s_median": float(np.median([b["steps_per_s"] for b in blocks])),
           "gradient_bytes": int(sum(b.nbytes for b in t._buckets)),
           "parameters": int(sum(p.size for p in model.state_dict().values()))}
    pure = []  # the same all-reduce with the ranks lined up first: transfer without waiting for a peer
    for _ in range(5 * repeats):
        g.barrier()
        t0 = time.perf_counter()
        g.all_reduce_many(t._buckets)
        pure.append(1000 * (time.perf_counter() - t0))
    row["allreduce_aligned_ms"] = float(np.median(pure))
    if sizes:  # fastest block per batch size: {rows: gradient-stage ms}
        row["gradient_ms_by_rows"] = {str(len(y)): min(b["gradient_ms"] for b in blocks),
                                      **{str(r): min(b["gradient_ms"] for b in sub_blocks[r]) for r in sizes}}
        row["gradient_half_batch_ms"] = row["gradient_ms_by_rows"][str(len(y) // 2)]
        row["gradient_ms"] = min(b["gradient_ms"] for b in blocks)
        row["update_ms"] = min(b["update_ms"] for b in blocks)
    if g.rank == 0:
        print("RESULT " + json.dumps(row), flush=True)
    dist.destroy_process_group()


def allreduce_worker(reps):
    import onnxkit.distributed as dist
    g = dist.init_process_group(timeout=120)
    rows = []
    for mb in (1, 10, 100):
        buf = np.zeros(mb * 2 ** 20 // 4, np.float32)
        for _ in range(3):
            g.all_reduce_many([buf])
        times = []
        for _ in range(reps if mb < 100 else max(3, reps // 4)):
            g.barrier()
            t0 = time.perf_counter()
            g.all_reduce_many([buf])
            times.append(time.perf_counter() - t0)
        rows.append({"engine": g.backend, "mb": mb, "ms": 1000 * float(np.median(times)),
                     "min_ms": 1000 * float(np.min(times))})
    if g.rank == 0:
        print("RESULT " + json.dumps(rows), flush=True)
    dist.destroy_process_group()


# ----- driver ------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def launch(n, args, launcher="mpiexec", timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **LOOPBACK)
    script = os.path.abspath(__file__)
    if launcher == "mpiexec":
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        cmd = [mpiexec, "-n", str(n), "-hosts", "127.0.0.1", sys.executable, script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={n}", "--master-addr=127.0.0.1",
               f"--master-port={_free_port()}", script]
    p = subprocess.Popen(cmd + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd + args)} failed (exit {p.returncode}):\n{out[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", nargs="+", default=["mlp", "lenet", "resnet8", "lstm"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=3, help="launches per row, interleaved; the fastest is shown")
    ap.add_argument("--allreduce", action="store_true", help="only the 1/10/100 MB all-reduce comparison")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", choices=["train", "allreduce"], help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker == "train":
        return train_worker(a.workload, a.steps, a.repeats)
    if a.worker == "allreduce":
        return allreduce_worker(a.reps)

    out = {"allreduce": [], "training": [], "loadavg_before": os.getloadavg()[0], "cpus": os.cpu_count()}
    say = (lambda *s: print(*s, file=sys.stderr)) if a.json else print
    say(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other processes share the cores)")
    if a.allreduce:
        launchers = ["mpiexec"]
        if importlib.util.find_spec("torch") is not None:
            launchers.append("torchrun")
        else:
            say("(torch not installed: no gloo row)")
        got = []
        for _ in range(a.runs):  # interleaved; per engine and size the run with the lowest median is kept
            for launcher in launchers:
                got += launch(2, ["--worker", "allreduce", "--reps", str(a.reps)], launcher=launcher)
        for key in dict.fromkeys((r["engine"], r["mb"]) for r in got):
            out["allreduce"].append(min((r for r in got if (r["engine"], r["mb"]) == key), key=lambda r: r["ms"]))
        say("all-reduce between 2 local processes (float32, median ms; bus bandwidth 2(P-1)/P*S/t = S/t for P=2)")
        say(f"{'engine':<8}{'MB':>6}{'ms':>10}{'min ms':>10}{'GB/s':>8}")
        for r in out["allreduce"]:
            gbs = r["mb"] * 2 ** 20 / r["ms"] / 1e6
            say(f"{r['engine']:<8}{r['mb']:>6}{r['ms']:>10.2f}{r['min_ms']:>10.2f}{gbs:>8.2f}")
    else:
        say(f"{'workload':<9}{'procs':>6}{'batch':>6}{'steps/s':>9}{'grad ms':>9}{'allred ms':>10}{'aligned':>8}"
            f"{'update ms':>10}{'speed-up':>9}  grad MB")
        for name in a.workloads:
            base = None
            runs = {n: [] for n in a.processes}
            for _ in range(a.runs):  # interleaved launches; the fastest of each kept (least disturbed)
                for n in a.processes:
                    runs[n].append(launch(n, ["--worker", "train", "--workload", name, "--steps", str(a.steps),
                                              "--repeats", str(a.repeats)]))
            for n in a.processes:
                r = max(runs[n], key=lambda r: r["steps_per_s"])
                out["training"].append(r)
                base = base or r["steps_per_s"]
                say(f"{name:<9}{n:>6}{r['global_batch']:>6}{r['steps_per_s']:>9.1f}{r['gradient_ms']:>9.2f}"
                    f"{r['allreduce_ms']:>10.3f}{r['allreduce_aligned_ms']:>8.3f}{r['update_ms']:>10.3f}"
                    f"{r['steps_per_s'] / base:>9.2f}"
                    f"  {r['gradient_bytes'] / 2**20:.2f}" +
                    (f"   (grad stage at batch/2: {r['gradient_half_batch_ms']:.2f} ms)" if n == 1 else ""))
        if 1 in a.processes:
            out["model"] = cost_model(out["training"], say)
    if a.json:
        print(json.dumps(out))


NETWORKS = {"10GbE": (1.25e9, 50e-6), "100Gb": (12.5e9, 5e-6)}  # (bandwidth B/s, per-message latency s)


def allreduce_s(nbytes, p, bandwidth, latency):
    """Bandwidth-optimal all-reduce (ring / reduce-scatter + all-gather): each rank sends and receives
    2(p-1)/p of the buffer; 2 log2(p) latency terms (MPICH's recursive halving/doubling)."""
    if p == 1:
        return 0.0
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * np.log2(p) * latency


def cost_model(rows, say, strong_batch=512):
    """T(P) = grad(b) + allreduce(S, P) + update with grad(b) = g0 + g1 b fitted (least squares) to
    the 1-process gradient stage at B, B/2, B/8 and 1 rows. Checked against the measured 2-process
    step (b = B/2, the measured intra-node all-reduce); predicts P = 8 and 64 nodes (one rank per
    node) for a fixed per-rank batch (weak scaling: samples/s speed-up, b = B/2 as in the 2-process
    run) and for a fixed global batch of `strong_batch` rows (strong scaling: b = ceil(512/P))."""
    result = {}
    say("\ncost model: T(P) = g0 + g1*b + allreduce(S, P) + update; allreduce = 2(P-1)/P*S/bw + 2log2(P)*lat")
    for name in dict.fromkeys(r["workload"] for r in rows):
        one = next((r for r in rows if r["workload"] == name and r["processes"] == 1), None)
        two = next((r for r in rows if r["workload"] == name and r["processes"] == 2), None)
        if one is None or "gradient_ms_by_rows" not in one:
            continue
        B, S, u = one["global_batch"], one["gradient_bytes"], one["update_ms"] / 1e3
        pts = sorted((int(k), v / 1e3) for k, v in one["gradient_ms_by_rows"].items())
        bs, ts = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts])
        g1, g0 = np.polyfit(bs, ts, 1)
        if g0 < 0:  # no negative per-call cost: fit through the origin
            g0, g1 = 0.0, float(bs @ ts / (bs @ bs))
        grad = lambda b: g0 + g1 * b  # noqa: E731
        t1 = grad(B) + u
        m = {"g0_ms": g0 * 1e3, "g1_ms_per_row": g1 * 1e3, "update_ms": u * 1e3, "gradient_bytes": S,
             "gradient_ms_by_rows": one["gradient_ms_by_rows"]}
        fit = ", ".join(f"{b}: {t * 1e3:.2f}" for b, t in pts)
        line = (f"{name:<8} g0 {g0 * 1e3:.2f} ms + {g1 * 1e3:.3f} ms/row (fit to rows: ms {fit}), "
                f"update {u * 1e3:.2f} ms, S {S / 2**20:.2f} MB")
        if two is not None:  # intra-node: the measured aligned all-reduce
            pred2 = grad(B / 2) + two["allreduce_aligned_ms"] / 1e3 + u
            m["predicted_2proc_speedup"] = t1 / pred2
            m["measured_2proc_speedup"] = two["steps_per_s"] / one["steps_per_s"]
            line += (f"\n         2 processes at batch {B}: predicted x{t1 / pred2:.2f}, "
                     f"measured x{m['measured_2proc_speedup']:.2f}")
        say(line)
        b = max(1, B // 2)
        for net, (bw, lat) in NETWORKS.items():
            for P in (8, 64):
                a = allreduce_s(S, P, bw, lat)
                weak = P * (grad(b) + u) / (grad(b) + u + a)
                strong = (grad(strong_batch) + u) / (grad(-(-strong_batch // P)) + a + u)
                m[f"{net}_P{P}"] = {"allreduce_ms": a * 1e3, "weak_speedup": weak, "strong_speedup": strong}
                say(f"    {net:<6} P={P:<3} all-reduce {a * 1e3:6.2f} ms   samples/s at {b} rows/rank: x{weak:5.1f}"
                    f"   step at global batch {strong_batch}: x{strong:5.1f}")
        result[name] = m
    return result

if __name__ == "__main__":
    main()
