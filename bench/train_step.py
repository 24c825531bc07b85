"""Training-step time of ok.Trainer against torch eager (same process, interleaved) and
onnxruntime-training (a subprocess in a side virtualenv), and the peak memory of a training loop.

Workloads
  mlp:   the seed MLP, 64x1000 -> 100 -> ReLU -> 10, MSELoss, SGD lr 1e-3; also a hand-written minimal
         step graph (Gemm forward, hand-derived backward, SGD; 23 nodes) run like the Trainer's, as the floor
  lenet: LeNet-5, 64x1x28x28, CrossEntropyLoss, SGD lr 1e-3 momentum 0.9
         (onnxruntime-training: plain SGD, its artifacts offer no momentum)
  lm:    a GPT-style causal LM (token + position embeddings, 2 pre-norm nn.TransformerEncoderLayer blocks,
         d_model 128, 4 heads, GELU MLP 512, causal mask, final LayerNorm, Linear head), vocab 1000,
         sequence 64, batch 16, next-token CrossEntropyLoss, AdamW lr 1e-3; dropout 0 so both sides
         run the same arithmetic (no onnxruntime-training row: the worker feeds float data only)
  resnet8: the CIFAR-style ResNet-8 (conv 3->16, BatchNorm, three stages of one basic block 16/32/64 with
         stride 2 and 1x1 projection shortcuts, global average pool, Linear 64->10), batch 32 x 3x32x32,
         CrossEntropyLoss, Adam lr 1e-3 (onnxruntime-training: AdamW with weight decay 0)
  lstm:  Embedding(5000, 64) -> LSTM(64, 128) -> last step -> Linear(128, 4), batch 32 x 35 tokens,
         CrossEntropyLoss, Adam lr 1e-3 (bench/lstm_step.py compares its formulations)
Settings (printed): torch.set_num_threads(2); onnxkit sessions with 2 intra-op threads, 1 inter-op
thread, intra-op spinning on (the Trainer default) and, as a second row, off. Each repeat runs
--steps onnxkit steps, pauses 20 ms (so spinning threads park), then --steps torch steps; the
medians of the per-step times of all repeats are compared; p50/p90 are printed per row (torch's spread
is the control for host noise). torch: zero_grad, forward, loss, backward, step, loss.item().
onnxkit: Trainer.step (one training-graph run through IOBinding; parameters and optimizer state stay
in onnxruntime buffers), and the same torch-style loop as torch's written with onnxkit ("define-by-run":
the graph is rebuilt every step; backward and the optimizer update are macro nodes and the session
comes from the structure cache).

onnxruntime-training 1.19.2 only has Python <= 3.11 wheels and needs onnx < 1.17, so it lives in
its own virtualenv; this script uses it when the interpreter exists:
    python -m venv /tmp/ortt && /tmp/ortt/bin/pip install onnxruntime-training==1.19.2 'onnx<1.17' 'numpy<2'
Its `onnxruntime.training` package imports torch at import time (training/optim); the worker
loads `onnxruntime.training.artifacts` and `.api` without running that __init__, so torch is not
needed there. The forward model is exported by onnxkit from the same initial weights.

Peak RSS: a fresh interpreter imports onnxkit (torch never imported), runs 200 seed-MLP Trainer
steps and reports its peak resident set (VmHWM; getrusage's ru_maxrss as the fallback off Linux --
on Linux a child inherits its parent's ru_maxrss, so it would report this script's own peak); the
same loop is measured for torch and onnxruntime-training.

    python bench/train_step.py [--steps 30] [--repeats 10] [--workloads mlp lenet lm resnet8 lstm]
                               [--ortt-python PATH]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DEFAULT_ORTT = "/tmp/ortt/bin/python"
THREADS = 2


def causal_lm(lib, vocab=1000, d_model=128, layers=2, heads=4, seq=64):
    """The lm workload, written once: `lib` is torch or onnxkit."""
    nn = lib.nn

    class CausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d_model), nn.Embedding(seq, d_model)
            block = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(block, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
            self.head = nn.Linear(d_model, vocab)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq))

        def forward(self, idx):
            t = idx.size(1)
            x = self.tok(idx) + self.pos(lib.arange(t))
            x = self.blocks(x, mask=self.mask[:t, :t], is_causal=True)
            return self.head(x).reshape(-1, vocab)

    return CausalLM()


def resnet8(lib, width=16, classes=10):
    """The resnet8 workload, written once: `lib` is torch or onnxkit (same parameter names)."""
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else nn.Identity())
            self.relu = nn.ReLU()

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            self.layers = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2),
                                        Block(2 * width, 4 * width, 2))
            self.pool, self.flatten = nn.AdaptiveAvgPool2d(1), nn.Flatten()
            self.fc = nn.Linear(4 * width, classes)

        def forward(self, x):
            return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))

    return ResNet8()


def workload(name):
    """(onnxkit model, torch model with the same weights, losses, optimizers, x, y, ORT-training loss)."""
    import torch
    import onnxkit as ok
    from onnxkit import nn, optim
    from models.lenet import LeNet5
    from models.mlp import seed_mlp
    rng = np.random.default_rng(0)
    ok.manual_seed(0)
    torch.manual_seed(0)
    T = torch.nn
    if name == "lm":
        tm, om = causal_lm(torch), causal_lm(ok)
        tokens = rng.integers(0, 1000, (16, 65))
        x, y = tokens[:, :-1], tokens[:, 1:].reshape(-1)
        losses, ortt_loss = (nn.CrossEntropyLoss(), T.CrossEntropyLoss()), None
        om.load_state_dict(tm.state_dict())
        return om, tm, losses, (optim.AdamW(om.parameters(), lr=1e-3), torch.optim.AdamW(tm.parameters(), lr=1e-3)), \
            x, y, ortt_loss
    if name in ("resnet8", "lstm"):
        if name == "resnet8":
            tm, om = resnet8(torch), resnet8(ok)
            x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
            y = rng.integers(0, 10, 32)
        else:
            from lstm_step import BATCH, CLASSES, SEQ, VOCAB, classifier
            tm, om = classifier(torch), classifier(ok)
            x = rng.integers(0, VOCAB, (BATCH, SEQ))
            y = rng.integers(0, CLASSES, BATCH)
        om.load_state_dict(tm.state_dict())
        return om, tm, (nn.CrossEntropyLoss(), T.CrossEntropyLoss()), \
            (optim.Adam(om.parameters(), lr=1e-3), torch.optim.Adam(tm.parameters(), lr=1e-3)), x, y, "CrossEntropyLoss"
    if name == "mlp":
        om, tm = seed_mlp(), T.Sequential(T.Linear(1000, 100), T.ReLU(), T.Linear(100, 10))
        x = rng.standard_normal((64, 1000)).astype(np.float32)
        y = rng.standard_normal((64, 10)).astype(np.float32)
        losses, opt_kw, ortt_loss = (nn.MSELoss(), T.MSELoss()), dict(lr=1e-3), "MSELoss"
    else:
        om = LeNet5()
        tm = T.Module()
        tm.features = T.Sequential(T.Conv2d(1, 6, 5, padding=2), T.ReLU(), T.MaxPool2d(2), T.Conv2d(6, 16, 5),
                                   T.ReLU(), T.MaxPool2d(2))
        tm.classifier = T.Sequential(T.Flatten(), T.Linear(400, 120), T.ReLU(), T.Linear(120, 84), T.ReLU(),
                                     T.Linear(84, 10))
        tm.forward = lambda inp: tm.classifier(tm.features(inp))
        x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, 64)
        losses, opt_kw, ortt_loss = (nn.CrossEntropyLoss(), T.CrossEntropyLoss()), dict(lr=1e-3, momentum=0.9), \
            "CrossEntropyLoss"
    om.load_state_dict(tm.state_dict())
    return om, tm, losses, (optim.SGD(om.parameters(), **opt_kw), torch.optim.SGD(tm.parameters(), **opt_kw)), x, y, \
        ortt_loss


def minimal_mlp_step(om, x, y, lr=1e-3):
    """A hand-written ONNX training step for the seed MLP (Gemm forward, MSE, hand-derived backward, SGD) run
    the way ok.Trainer runs its graph: IOBinding, outputs bound to the next step's inputs, spinning on.
    The floor for the mlp workload: what onnxruntime itself needs for this arithmetic."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto as TP, helper as h
    from onnxkit import runtime
    n, d_out = y.shape
    c = lambda name, v: h.make_tensor(name, TP.FLOAT, [], [v])
    nodes = [
        h.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1), h.make_node("Relu", ["h"], ["r"]),
        h.make_node("Gemm", ["r", "W2", "b2"], ["o"], transB=1), h.make_node("Sub", ["o", "y"], ["e"]),
        h.make_node("Mul", ["e", "e"], ["e2"]), h.make_node("ReduceMean", ["e2"], ["loss"], keepdims=0),
        h.make_node("Mul", ["e", "k"], ["d"]),  # dloss/do = 2 e / numel
        h.make_node("Gemm", ["d", "r"], ["gW2"], transA=1), h.make_node("ReduceSum", ["d", "ax0"], ["gb2"], keepdims=0),
        h.make_node("MatMul", ["d", "W2"], ["dr"]), h.make_node("Greater", ["h", "zero"], ["pos"]),
        h.make_node("Cast", ["pos"], ["posf"], to=TP.FLOAT), h.make_node("Mul", ["dr", "posf"], ["dh"]),
        h.make_node("Gemm", ["dh", "x"], ["gW1"], transA=1), h.make_node("ReduceSum", ["dh", "ax0"], ["gb1"], keepdims=0)]
    params = ["W1", "b1", "W2", "b2"]
    for p in params:
        nodes += [h.make_node("Mul", ["g" + p, "neg_lr"], ["s" + p]), h.make_node("Add", [p, "s" + p], ["new_" + p])]
    sd = {k: np.ascontiguousarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float32) for k, v in om.state_dict().items()}
    values = {"W1": sd["0.weight"], "b1": sd["0.bias"], "W2": sd["2.weight"], "b2": sd["2.bias"]}
    inits = [c("k", 2.0 / (n * d_out)), c("zero", 0.0), c("neg_lr", -lr), h.make_tensor("ax0", TP.INT64, [1], [0])]
    vi = lambda name, arr: h.make_tensor_value_info(name, TP.FLOAT, list(arr.shape))
    graph = h.make_graph(nodes, "minimal", [vi("x", x), vi("y", y)] + [vi(p, values[p]) for p in params],
                         [h.make_tensor_value_info("loss", TP.FLOAT, [])] + [vi("new_" + p, values[p]) for p in params],
                         inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(model)
    sess = runtime.make_inference_session(model, "cpu", spinning=True)
    ov = ort.OrtValue.ortvalue_from_numpy
    state = {p: [ov(values[p]), ov(np.empty_like(values[p]))] for p in params}
    loss = ov(np.zeros((), np.float32))
    b = sess.io_binding()
    b.bind_cpu_input("x", x)
    b.bind_cpu_input("y", y)
    b.bind_ortvalue_output("loss", loss)
    cur = [0]

    def step():
        i = cur[0]
        for p in params:
            b.bind_ortvalue_input(p, state[p][i])
            b.bind_ortvalue_output("new_" + p, state[p][1 - i])
        sess.run_with_iobinding(b)
        cur[0] = 1 - i
        return float(loss.numpy())
    return step


def time_steps(fn, steps):
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out[1:]  # the first step of a block pays for waking the threads


def torch_style_step(model, loss_fn, opt, x, y):
    """One step of the loop torch's tutorials write (zero_grad, forward, loss, backward, step, loss.item()),
    for a torch or an onnxkit model alike."""
    def step():
        opt.zero_grad()
        out = loss_fn(model(x), y)
        out.backward()
        opt.step()
        out.item()
    return step


def bench_in_process(name, steps, repeats):
    """{runner: per-step times in ms} for ok.Trainer (spinning on and off), onnxkit's torch-style loop
    (plain and with model.compile()) and torch eager, interleaved."""
    import torch
    import onnxkit as ok
    torch.set_num_threads(THREADS)
    om, tm, (loss, tloss), (opt, topt), x, y, _ = workload(name)
    tx, ty = torch.tensor(x), torch.tensor(y)

    om2, _, (loss2, _), (opt2, _), _, _, _ = workload(name)  # a copy per runner: each Trainer owns its Module
    om3, _, (loss3, _), (opt3, _), _, _, _ = workload(name)
    om5, _, (loss5, _), (opt5, _), _, _, _ = workload(name)
    om5.compile()
    torch_step = torch_style_step(tm, tloss, topt, tx, ty)
    onnxkit_loop = torch_style_step(om3, loss3, opt3, ok.tensor(x), ok.tensor(y))  # the same loop in onnxkit
    compiled_loop = torch_style_step(om5, loss5, opt5, ok.tensor(x), ok.tensor(y))
    spin = ok.Trainer(om, loss, opt, spinning=True)
    nospin = ok.Trainer(om2, loss2, opt2, spinning=False)
    runs = {"onnxkit Trainer (spinning)": lambda: spin.step(x, y),
            "onnxkit Trainer (no spinning)": lambda: nospin.step(x, y),
            "onnxkit define-by-run loop": onnxkit_loop, "  the same, model.compile()": compiled_loop,
            "torch eager": torch_step}
    if name == "mlp":  # the floor: a hand-written minimal step graph run like the Trainer's
        om4, _, _, _, x4, y4, _ = workload(name)
        runs["hand-written minimal graph"] = minimal_mlp_step(om4, x4, y4)
    for fn in runs.values():  # warm up: build, compile, first runs
        for _ in range(5):
            fn()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k] += time_steps(fn, steps)
            time.sleep(0.02)
    return {k: np.array(v) * 1e3 for k, v in times.items()}


ORTT_WORKER = textwrap.dedent('''
    import json, os, sys, time, types
    import numpy as np
    import onnxruntime
    pkg = types.ModuleType("onnxruntime.training")  # skip training/__init__, which imports torch
    pkg.__path__ = [os.path.join(os.path.dirname(onnxruntime.__file__), "training")]
    sys.modules["onnxruntime.training"] = pkg
    from onnxruntime.training import artifacts
    from onnxruntime.training.api import CheckpointState, Module, Optimizer
    import onnx
    model_path, loss_name, out_dir = sys.argv[1:4]
    steps, repeats, optim_name = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    onnxruntime.set_default_logger_severity(3)
    os.makedirs(out_dir, exist_ok=True)
    model = onnx.load(model_path)
    trainable = set(json.load(open(os.path.join(os.path.dirname(model_path), "params.json"))))
    params = [i.name for i in model.graph.initializer if i.name in trainable]  # not BN statistics or constants
    frozen = [i.name for i in model.graph.initializer if i.name not in trainable]
    artifacts.generate_artifacts(model, requires_grad=params, frozen_params=frozen,
                                 loss=getattr(artifacts.LossType, loss_name), optimizer=getattr(artifacts.OptimType, optim_name),
                                 artifact_directory=out_dir)
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    state = CheckpointState.load_checkpoint(os.path.join(out_dir, "checkpoint"))
    module = Module(os.path.join(out_dir, "training_model.onnx"), state, os.path.join(out_dir, "eval_model.onnx"),
                    device="cpu", session_options=so)
    opt = Optimizer(os.path.join(out_dir, "optimizer_model.onnx"), module)
    opt.set_learning_rate(1e-3)
    module.train()
    here = os.path.dirname(model_path)
    x, y = np.load(os.path.join(here, "x.npy")), np.load(os.path.join(here, "y.npy"))
    def step():
        module(x, y)
        opt.step()
        module.lazy_reset_grad()
    for _ in range(5):
        step()
    times = []
    for _ in range(repeats):
        for i in range(steps):
            t0 = time.perf_counter(); step(); dt = time.perf_counter() - t0
            if i:
                times.append(dt)
        time.sleep(0.02)
    print(json.dumps({"ms": float(np.median(times)) * 1e3,
                      "rss_mib": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024,
                      "nodes": len(onnx.load(os.path.join(out_dir, "training_model.onnx")).graph.node)}))
''')


def bench_ortt(name, python, steps, repeats):
    """onnxruntime-training's median ms/step (and peak RSS) in its virtualenv; None when missing."""
    if name == "lm":
        return None, "not measured for lm (the worker feeds float data; this model takes token ids)"
    if not python or not os.path.exists(python):
        return None, f"not measured: no interpreter at {python} (see this script's docstring to install it)"
    import onnxkit as ok
    om, _, _, _, x, y, loss_name = workload(name)
    with tempfile.TemporaryDirectory() as d:
        ok.export(om, [ok.Input("input", ("N",) + x.shape[1:])], path=os.path.join(d, "forward.onnx"))
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "y.npy"), y)
        with open(os.path.join(d, "params.json"), "w") as f:
            json.dump([n for n, _ in om.named_parameters()], f)
        worker = os.path.join(d, "worker.py")
        with open(worker, "w") as f:
            f.write(ORTT_WORKER)
        proc = subprocess.run([python, worker, os.path.join(d, "forward.onnx"), loss_name, os.path.join(d, "art"),
                               str(steps), str(repeats), "AdamW" if name in ("resnet8", "lstm") else "SGD"],
                              capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return None, "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


PEAK = textwrap.dedent('''
    import resource

    def peak_mib():
        """Peak RSS of this process: VmHWM (Linux). ru_maxrss would report the parent's peak when that
        was higher, since Linux keeps it across fork and exec."""
        try:
            with open("/proc/self/status") as f:
                return int(f.read().split("VmHWM:")[1].split()[0]) / 1024
        except (OSError, IndexError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
''')

RSS_ONNXKIT = PEAK + textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import onnxkit as ok
    from onnxkit import nn, optim
    from models.mlp import seed_mlp
    model = seed_mlp()
    tr = ok.Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1e-3))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 1000)).astype(np.float32), rng.standard_normal((64, 10)).astype(np.float32)
    for _ in range(200):
        tr.step(x, y)
    assert "torch" not in sys.modules
    print(peak_mib())
''')

RSS_TORCH = PEAK + textwrap.dedent('''
    import torch
    torch.set_num_threads(2)
    m = torch.nn.Sequential(torch.nn.Linear(1000, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    opt, lf = torch.optim.SGD(m.parameters(), lr=1e-3), torch.nn.MSELoss()
    x, y = torch.randn(64, 1000), torch.randn(64, 10)
    for _ in range(200):
        opt.zero_grad(); lf(m(x), y).backward(); opt.step()
    print(peak_mib())
''')


def peak_rss(script, *args):
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600)
    return float(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="steps per block")
    ap.add_argument("--repeats", type=int, default=10, help="interleaved blocks per runner")
    names = ["mlp", "lenet", "resnet8", "lstm", "lm"]
    ap.add_argument("--workloads", nargs="+", default=names, choices=names)
    ap.add_argument("--ortt-python", default=DEFAULT_ORTT, help="python of the onnxruntime-training virtualenv")
    args = ap.parse_args()
    import onnxruntime
    import torch
    print(f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs; torch threads "
          f"{THREADS}; onnxkit intra-op threads {THREADS}, inter-op 1, spinning on/off as labelled; "
          f"{args.repeats} interleaved blocks of {args.steps} steps, medians")
    for name in args.workloads:
        res = bench_in_process(name, args.steps, args.repeats)
        ortt, why = bench_ortt(name, args.ortt_python, args.steps, args.repeats)
        base = float(np.median(res["torch eager"]))
        trainer = float(np.median(res["onnxkit Trainer (spinning)"]))
        print(f"\n{name}: ms/step p50 (ratio to torch eager), p90, p90/p50")
        for k, v in res.items():
            p50, p90 = np.percentile(v, [50, 90])
            extra = f"  [{p50 / trainer:.2f}x the Trainer]" if "define-by-run" in k or "compile" in k else ""
            if k == "hand-written minimal graph":
                extra = f"  [the Trainer is {trainer / p50:.2f}x this]"
            print(f"  {k:30s} {p50:8.3f}  ({p50 / base:.2f}x)  p90 {p90:8.3f}  {p90 / p50:.2f}{extra}")
        if ortt:
            kind = "AdamW wd 0" if name in ("resnet8", "lstm") else "plain SGD"
            print(f"  {'onnxruntime-training 1.19.2':30s} {ortt['ms']:8.3f}  ({ortt['ms'] / base:.2f}x)  "
                  f"[subprocess, {kind}, {ortt['nodes']} nodes]")
        else:
            print(f"  onnxruntime-training: {why}")
    print("\npeak RSS of 200 seed-MLP training steps (fresh process):")
    print(f"  onnxkit (torch not imported) {peak_rss(RSS_ONNXKIT, ROOT):6.0f} MiB")
    print(f"  torch eager                  {peak_rss(RSS_TORCH):6.0f} MiB")
    ortt, _ = bench_ortt("mlp", args.ortt_python, 20, 1) if os.path.exists(args.ortt_python) else (None, None)
    if ortt:
        print(f"  onnxruntime-training         {ortt['rss_mib']:6.0f} MiB  (includes building its artifacts)")


if __name__ == "__main__":
    main()
