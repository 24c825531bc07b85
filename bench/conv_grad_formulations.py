"""Candidate standard-op formulations of LeNet-5's conv and max-pool gradients, timed on onnxruntime
against torch's own kernels (aten.convolution_backward / max_pool2d_with_indices(_backward)).

Every candidate is a tiny ONNX graph with static shapes (batch 64). In one process, 2 threads both
(onnxruntime: 2 intra-op threads, one session with spinning on -- the Trainer's default -- and one with
it off; torch.set_num_threads(2)), each repeat times every candidate for --steps runs in turn
(interleaved, 10 ms pauses so spinning threads park), and the median of all runs is printed. Each
candidate is first checked against numpy (pool candidates on ReLU'd integer inputs with many ties, so
"the first maximum of a window gets the gradient", as in torch, is verified).

    python bench/conv_grad_formulations.py [--steps 20] [--repeats 15]

What onnxkit/autodiff/rules_nn.py took from the table: the row-pairs MatMul max-pool gradient (tiling
windows), MatMul + Col2Im for small strided/5x5 input gradients (ConvTranspose slows down badly with
spinning threads), and the swapped weight-gradient Conv split in 2 row groups when it has one input
channel (a batch-1 Conv runs on one thread). The swapped Conv stays for conv2's weight gradient."""
import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

N = 64
F = TensorProto.FLOAT


class G:
    """A small graph under construction: `op(type, inputs, **attrs)` returns the output name."""

    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def op(self, op_type, inputs, n_out=1, **attrs):
        self.k += 1
        outs = [f"t{self.k}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def c(self, value, dtype=np.int64):
        self.k += 1
        name = f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def model(self, feeds, out):
        inputs = [helper.make_tensor_value_info(k, F, v.shape) for k, v in feeds.items()]
        graph = helper.make_graph(self.nodes, "g", inputs, [helper.make_tensor_value_info(out, F, None)],
                                  self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


# ----- reference values (numpy) -----------------------------------------------------------------------
def ref_conv_wgrad(x, gy, k, p):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    H, W = gy.shape[2:]
    return np.stack([np.stack([np.einsum("nchw,nmhw->mc", xp[:, :, i:i + H, j:j + W], gy) for j in range(k)], -1)
                     for i in range(k)], -2)


def ref_conv_igrad(gy, w, H):
    n, m, oh, ow = gy.shape
    k = w.shape[2]
    gx = np.zeros((n, w.shape[1], H, H), np.float32)
    for i in range(k):
        for j in range(k):
            gx[:, :, i:i + oh, j:j + ow] += np.einsum("nmhw,mc->nchw", gy, w[:, :, i, j])
    return gx


def ref_pool_grad(x, g):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    first = np.argmax(win, -1)  # numpy's argmax returns the first maximum, as torch
    gw = (np.arange(4) == first[..., None]) * g[..., None]
    return gw.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


# ----- conv weight gradient: x (N, C, H, W), gy (N, M, OH, OW) -> (M, C, k, k) ---------------------------
def wgrad_swapped(x, gy, k, p):
    """The rule before this change: Conv(Transpose(x), Transpose(gy)) with batch and channels swapped."""
    g = G()
    xs, gs = g.op("Transpose", ["x"], perm=[1, 0, 2, 3]), g.op("Transpose", ["gy"], perm=[1, 0, 2, 3])
    y = g.op("Conv", [xs, gs], pads=[p] * 4)
    return g, g.op("Transpose", [y], perm=[1, 0, 2, 3])


def wgrad_grouped_batch(x, gy, k, p):
    """C == 1 only: Conv over (1, N, Hp, Wp) with gy as N groups of M filters, then ReduceSum over N."""
    g = G()
    m = gy.shape[1]
    xs = g.op("Reshape", ["x", g.c([1, N, *x.shape[2:]])])
    ws = g.op("Reshape", ["gy", g.c([N * m, 1, *gy.shape[2:]])])
    y = g.op("Conv", [xs, ws], pads=[p] * 4, group=N)
    y = g.op("Reshape", [y, g.c([N, m, 1, k, k])])
    return g, g.op("ReduceSum", [y, g.c([0])], keepdims=0)


def _cols_cn(g, x, k, p):
    """im2col with the channel axis first: (C*k*k, N*OH*OW) from k*k Slices of Transpose(x)."""
    c, h = x.shape[1], x.shape[2]
    oh = h + 2 * p - k + 1
    xt = g.op("Transpose", ["x"], perm=[1, 0, 2, 3])
    if p:
        xt = g.op("Pad", [xt, g.c([0, 0, p, p, 0, 0, p, p])])
    parts = [g.op("Unsqueeze", [g.op("Slice", [xt, g.c([i, j]), g.c([i + oh, j + oh]), g.c([2, 3])]), g.c([1])])
             for i in range(k) for j in range(k)]
    return g.op("Reshape", [g.op("Concat", parts, axis=1), g.c([c * k * k, -1])])


def wgrad_im2col_gemm(x, gy, k, p):
    """im2col (C-first) + Gemm(Transpose(gy) as (M, N*OH*OW), cols, transB=1)."""
    g = G()
    cols = _cols_cn(g, x, k, p)
    gt = g.op("Reshape", [g.op("Transpose", ["gy"], perm=[1, 0, 2, 3]), g.c([gy.shape[1], -1])])
    y = g.op("Gemm", [gt, cols], transB=1)
    return g, g.op("Reshape", [y, g.c([gy.shape[1], x.shape[1], k, k])])


def wgrad_swapped_rows2(x, gy, k, p):
    """The swapped Conv with gy's rows split in two halves run as 2 groups (a batch-1 Conv runs on one
    thread; 2 groups run on 2): x's overlapping row ranges Concat'ed on the channel axis, gy's halves by one
    Transpose, the 2 group outputs summed. (onnxkit's rule for 1-input-channel convs.)"""
    g = G()
    oh, ow, m, c = gy.shape[2], gy.shape[3], gy.shape[1], x.shape[1]
    a = oh // 2
    xp = g.op("Pad", ["x", g.c([0, 0, p, p, 0, 0, p, p])]) if p else "x"
    xs = g.op("Transpose", [xp], perm=[1, 0, 2, 3])
    rows = lambda t, lo, hi: g.op("Slice", [t, g.c([lo]), g.c([hi]), g.c([2])])
    xs2 = g.op("Concat", [rows(xs, 0, a + k - 1), rows(xs, a, oh + k - 1)], axis=1)
    gs2 = g.op("Transpose", [g.op("Reshape", ["gy", g.c([N, m, 2, a, ow])])], perm=[2, 1, 0, 3, 4])
    y = g.op("Conv", [xs2, g.op("Reshape", [gs2, g.c([2 * m, N, a, ow])])], group=2)  # (C, 2M, k, k)
    y = g.op("ReduceSum", [g.op("Reshape", [y, g.c([c, 2, m, k, k])]), g.c([1])], keepdims=0)
    return g, g.op("Transpose", [y], perm=[1, 0, 2, 3])


WGRAD = {"swapped Conv": wgrad_swapped, "swapped Conv, rows in 2 groups": wgrad_swapped_rows2,
         "grouped-batch Conv (static batch only)": wgrad_grouped_batch, "im2col+Gemm": wgrad_im2col_gemm}


# ----- conv input gradient: gy (N, M, OH, OW), w (M, C, k, k) -> (N, C, H, W) (stride 1, no padding) ----
def igrad_convtranspose(gy, w, H):
    """The rule: ConvTranspose(gy, w)."""
    g = G()
    return g, g.op("ConvTranspose", ["gy", "w"])


def igrad_flipped(gy, w, H):
    """Conv(gy, flip(Transpose(w))) with pads k-1."""
    g = G()
    k = w.shape[2]
    wt = g.op("Transpose", ["w"], perm=[1, 0, 2, 3])
    wf = g.op("Slice", [wt, g.c([-1, -1]), g.c([-_BIG, -_BIG]), g.c([2, 3]), g.c([-1, -1])])
    return g, g.op("Conv", ["gy", wf], pads=[k - 1] * 4)


def igrad_col2im(gy, w, H):
    """cols = MatMul(Transpose(w) as (C*k*k, M), gy as (N, M, OH*OW)) for all images at once, then Col2Im.
    (onnxkit's rule for small per-image column matrices.)"""
    g = G()
    m, c, k, _ = w.shape
    wt = g.op("Transpose", [g.op("Reshape", ["w", g.c([m, c * k * k])])], perm=[1, 0])
    cols = g.op("MatMul", [wt, g.op("Reshape", ["gy", g.c([N, m, -1])])])
    return g, g.op("Col2Im", [cols, g.c([H, H]), g.c([k, k])])


def igrad_stacked(gy, w, H):
    """ConvTranspose of one image: the batch stacked along H with k-1 zero rows after each image (so
    their outputs do not overlap), Transposes in and out."""
    g = G()
    m, c, k, _ = w.shape
    ow = gy.shape[3]
    t = g.op("Pad", ["gy", g.c([0, 0, 0, 0, 0, 0, k - 1, 0])])
    t = g.op("Reshape", [g.op("Transpose", [t], perm=[1, 0, 2, 3]), g.c([1, m, -1, ow])])
    y = g.op("Slice", [g.op("ConvTranspose", [t, "w"]), g.c([0]), g.c([-(k - 1)]), g.c([2])])
    return g, g.op("Transpose", [g.op("Reshape", [y, g.c([c, -1, H, H])])], perm=[1, 0, 2, 3])


_BIG = np.iinfo(np.int64).max
IGRAD = {"ConvTranspose": igrad_convtranspose, "MatMul + Col2Im": igrad_col2im,
         "ConvTranspose, batch stacked along H": igrad_stacked, "flipped Conv": igrad_flipped}


# ----- max pool 2x2 / stride 2 forward + backward: x (N, C, H, W), g (N, C, H/2, W/2) -> (y, gx) --------
def _windows_last(g, x, shape):
    """(N, C, H/2, W/2, 4): each 2x2 window's elements last, in row-major order."""
    n, c, h, w = shape
    t = g.op("Reshape", [x, g.c([n, c, h // 2, 2, w // 2, 2])])
    return g.op("Reshape", [g.op("Transpose", [t], perm=[0, 1, 2, 4, 3, 5]), g.c([n, c, h // 2, w // 2, 4])])


def _back_from_windows(g, onehot, shape):
    n, c, h, w = shape
    t = g.op("Reshape", [onehot, g.c([n, c, h // 2, w // 2, 2, 2])])
    return g.op("Reshape", [g.op("Transpose", [t], perm=[0, 1, 2, 4, 3, 5]), g.c([n, c, h, w])])


def pool_indices_scatter(shape):
    """The rule before this change: MaxPool (forward) + MaxPool with Indices + ScatterElements(add) into zeros."""
    g = G()
    y = g.op("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])
    _, idx = g.op("MaxPool", ["x"], n_out=2, kernel_shape=[2, 2], strides=[2, 2])
    zeros = g.op("ConstantOfShape", [g.c([int(np.prod(shape))])],
                 value=numpy_helper.from_array(np.zeros(1, np.float32)))
    flat = g.op("ScatterElements", [zeros, g.op("Reshape", [idx, g.c([-1])]), g.op("Reshape", ["g", g.c([-1])])],
                axis=0, reduction="add")
    return g, y, g.op("Reshape", [flat, g.c(list(shape))])


def pool_windows_argmax(shape):
    """MaxPool forward; backward: windows-last Transpose, ArgMax (first max) + Equal(arange 4) + Cast,
    Mul by g, Transpose back."""
    g = G()
    win = _windows_last(g, "x", shape)
    y = g.op("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])
    first = g.op("ArgMax", [win], axis=4, keepdims=1, select_last_index=0)
    mask = g.op("Cast", [g.op("Equal", [first, g.c(np.arange(4))])], to=F)
    gw = g.op("Mul", [mask, g.op("Unsqueeze", ["g", g.c([4])])])
    return g, y, _back_from_windows(g, gw, shape)


def earlier_matrix(w):
    """(2w, 2w) 0/1: entry [i, j] = 1 when element i of a row pair (two image rows side by side) comes
    before element j in the same 2x2 window, in row-major window order."""
    r, col = np.divmod(np.arange(2 * w), w)
    same = (col[:, None] // 2) == (col[None, :] // 2)
    before = (r[:, None] < r[None, :]) | ((r[:, None] == r[None, :]) & (col[:, None] < col[None, :]))
    return (same & before).astype(np.float32)


def spread_matrix(w):
    """(w/2, 2w) 0/1: MatMul by it copies each pooled value to its window's 4 places in a row pair."""
    return (np.arange(w // 2)[:, None] == (np.arange(2 * w) % w)[None, :] // 2).astype(np.float32)


def pool_windows_matmul(shape):
    """MaxPool forward; backward in the windows-last layout (Transposes in and out) with no inner-axis
    broadcasting: y and g spread by MatMul with ones(1, 4); first max = Relu(e - earlier maxima), the
    earlier count by MatMul with a 4x4 strictly-upper ones matrix."""
    g = G()
    n, c, h, w = shape
    p = n * c * (h // 2) * (w // 2)
    win = g.op("Reshape", [_windows_last(g, "x", shape), g.c([p, 4])])
    y = g.op("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])
    ones = g.c(np.ones((1, 4), np.float32), np.float32)
    e = g.op("Cast", [g.op("Equal", [win, g.op("MatMul", [g.op("Reshape", [y, g.c([p, 1])]), ones])])], to=F)
    first = g.op("Relu", [g.op("MatMul", [e, g.c(np.eye(4) - np.triu(np.ones((4, 4)), 1), np.float32)])])
    gw = g.op("Mul", [first, g.op("MatMul", [g.op("Reshape", ["g", g.c([p, 1])]), ones])])
    return g, y, _back_from_windows(g, gw, shape)


def pool_row_pairs(shape):
    """MaxPool forward; backward in x's own layout seen as (N, C, H/2, 2W) row pairs, no Transposes:
    y and g spread to their windows by MatMul with a (W/2, 2W) 0/1 matrix, e = Equal(x, spread y),
    first max = Relu(MatMul(e, I - earlier)), gx = first * spread g."""
    g = G()
    n, c, h, w = shape
    spread = g.c(spread_matrix(w), np.float32)
    y = g.op("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])
    pairs = g.op("Reshape", ["x", g.c([n, c, h // 2, 2 * w])])
    e = g.op("Cast", [g.op("Equal", [pairs, g.op("MatMul", [y, spread])])], to=F)
    first = g.op("Relu", [g.op("MatMul", [e, g.c(np.eye(2 * w) - earlier_matrix(w), np.float32)])])
    return g, y, g.op("Reshape", [g.op("Mul", [first, g.op("MatMul", ["g", spread])]), g.c(list(shape))])


POOL = {"MaxPool+Indices+ScatterElements": pool_indices_scatter, "windows-last ArgMax+Equal": pool_windows_argmax,
        "windows-last MatMul spreads": pool_windows_matmul, "row pairs MatMul spreads": pool_row_pairs}


# ----- harness ------------------------------------------------------------------------------------------
def session(g, feeds, outs, spinning):
    if isinstance(outs, str):
        outs = [outs]
    m = G.model(g, feeds, outs[0])
    for o in outs[1:]:
        m.graph.output.append(helper.make_tensor_value_info(o, F, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, feeds)


def both(g, feeds, outs):
    """(spinning session, non-spinning session) run functions."""
    return session(g, feeds, outs, True), session(g, feeds, outs, False)


def cases():
    """(section, layer, name, (spinning run, non-spinning run), reference, tolerance) per candidate; torch's
    kernel has one run function in both columns."""
    import torch
    rng = np.random.default_rng(0)
    aten = torch.ops.aten
    out = []
    layers = [("conv1 1->6 5x5 p2 28x28", 1, 6, 28, 2), ("conv2 6->16 5x5 14x14", 6, 16, 14, 0)]
    for label, c, m, h, p in layers:
        k, oh = 5, h + 2 * p - 4
        x = rng.standard_normal((N, c, h, h)).astype(np.float32)
        gy = rng.standard_normal((N, m, oh, oh)).astype(np.float32)
        w = (rng.uniform(-1, 1, (m, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)  # torch's init scale
        tx, tgy, tw = torch.tensor(x), torch.tensor(gy), torch.tensor(w)

        def torch_conv(mask, p=p, tx=tx, tgy=tgy, tw=tw):
            f = lambda: [aten.convolution_backward(tgy, tx, tw, None, [1, 1], [p, p], [1, 1], False, [0, 0], 1,
                                                   mask)[mask.index(True)].numpy()]
            return f, f
        want = ref_conv_wgrad(x, gy, k, p)
        for name, fn in WGRAD.items():
            if name.startswith("grouped-batch") and c != 1:
                continue
            g, o = fn(x, gy, k, p)
            out.append(("weight grad", label, name, both(g, {"x": x, "gy": gy}, o), want, 1e-3))
        out.append(("weight grad", label, "torch convolution_backward", torch_conv([False, True, False]), want, 1e-3))
        if p == 0:  # LeNet needs no input gradient for conv1 (its input is data)
            want = ref_conv_igrad(gy, w, h)
            for name, fn in IGRAD.items():
                g, o = fn(gy, w, h)
                out.append(("input grad", label, name, both(g, {"gy": gy, "w": w}, o), want, 1e-3))
            out.append(("input grad", label, "torch convolution_backward", torch_conv([True, False, False]), want,
                        1e-3))
    for shape in [(N, 6, 28, 28), (N, 16, 10, 10)]:
        label = f"maxpool 2x2 {shape[1]}x{shape[2]}x{shape[3]}"
        x = np.maximum(np.round(rng.standard_normal(shape) * 2), 0).astype(np.float32)  # ReLU'd, many ties
        gsm = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(np.float32)
        want = ref_pool_grad(x, gsm)
        for name, fn in POOL.items():
            g, y, gx = fn(shape)
            out.append(("maxpool fwd+bwd", label, name, both(g, {"x": x, "g": gsm}, [gx, y]), want, 0))
        tx, tg = torch.tensor(x), torch.tensor(gsm)

        def torch_pool(tx=tx, tg=tg):
            y, idx = aten.max_pool2d_with_indices(tx, [2, 2], [2, 2])
            return [aten.max_pool2d_with_indices_backward(tg, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx).numpy()]
        out.append(("maxpool fwd+bwd", label, "torch max_pool2d_with_indices(+backward)", (torch_pool, torch_pool),
                    want, 0))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(2)
    runs = cases()
    fns = [(i, col, f) for i, run in enumerate(runs) for col, f in enumerate(run[3])]
    for sec, label, name, pair, want, tol in runs:
        for fn in pair:
            got = fn()[0]
            assert np.allclose(got, want, rtol=tol, atol=tol), (sec, label, name, np.abs(got - want).max())
    for _, _, fn in fns:
        for _ in range(3):
            fn()
    times = {(i, col): [] for i, col, _ in fns}
    for _ in range(args.repeats):
        for i, col, fn in fns:
            for _ in range(args.steps):
                t0 = time.perf_counter()
                fn()
                times[i, col].append(time.perf_counter() - t0)
            time.sleep(0.01)  # let spinning threads park
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}; 2 threads both (ORT: 2 intra-op threads, "
          f"spinning on / off); {args.repeats} interleaved blocks of {args.steps} runs; medians in ms; every "
          f"candidate checked against numpy first (pools on inputs with ties)")
    last = None
    for i, (sec, label, name, *_rest) in enumerate(runs):
        if (sec, label) != last:
            print(f"\n{sec}, {label}: {'spin on':>9s} {'spin off':>9s}")
            last = (sec, label)
        print(f"  {name:42s} {np.median(times[i, 0]) * 1e3:7.3f}  {np.median(times[i, 1]) * 1e3:7.3f}")


if __name__ == "__main__":
    main()
