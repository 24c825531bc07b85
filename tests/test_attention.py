"""scaled_dot_product_attention and MultiheadAttention against torch: a parity table (forward, gradients
w.r.t. the inputs and every parameter, state_dict keys, export with symbolic batch and sequence dims run
in onnxruntime at two lengths), fully masked rows, dropout statistics in train mode, errors.

Each Case is written once for both libraries: `build(nn)` makes the module, `call(m, xs, F)` runs it.
Inputs are declared by dims (names resolved from a sizes dict, or ints) and a kind (see MAKERS), so the
same declaration gives the forward inputs and the export's symbolic Inputs."""
import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from onnxkit import nn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's nested-tensor and mask-type notices

NEG = -np.inf


def _bool_masked(rng, s):  # torch.nn convention: True = masked; key 0 always kept
    m = rng.random(s) < 0.35
    m[..., 0] = False
    return m


def _bool_attend(rng, s):  # SDPA convention: True = attend; key 0 always attended
    m = rng.random(s) > 0.35
    m[..., 0] = True
    return m


def _float_mask(rng, s):
    m = np.where(rng.random(s) < 0.3, NEG, rng.standard_normal(s)).astype(np.float32)
    m[..., 0] = 0.0
    return m


def _dead_row(rng, s):  # SDPA convention with query row 0 attending nothing
    m = _bool_attend(rng, s)
    m[..., 0, :] = False
    return m


def _right_padding(rng, s):  # (N, S) key padding, True after each row's length (torch's "left aligned")
    lengths = rng.integers(1, s[1] + 1, s[0])
    lengths[0] = s[1]
    return np.arange(s[1])[None, :] >= lengths[:, None]


MAKERS = {
    "x": lambda rng, s: rng.standard_normal(s).astype(np.float32),
    "masked": _bool_masked,
    "attend": _bool_attend,
    "fmask": _float_mask,
    "fkpm": lambda rng, s: np.where(_bool_masked(rng, s), NEG, 0.0).astype(np.float32),
    "causal": lambda rng, s: np.triu(np.full(s, NEG, np.float32), 1),
    "dead": _dead_row,
    "right": _right_padding,
}

SIZES = [dict(N=2, L=3, S=4), dict(N=3, L=5, S=2), dict(N=1, L=2, S=6)]  # forward, then two export runs


@dataclasses.dataclass
class Case:
    name: str
    build: Optional[Callable]             # nn -> module (None for functional cases)
    inputs: Sequence[tuple]               # (kind, dims): dims are ints or names in SIZES ("N*2" allowed)
    call: Callable = lambda m, xs, F: m(*xs)
    modes: Sequence[str] = ("eval",)
    export: bool = True
    rtol: float = 1e-4
    atol: float = 1e-5


def _dim(d, sizes):
    return d if isinstance(d, int) else int(eval(d, {}, dict(sizes)))


def _dim_name(d):
    return d if isinstance(d, int) else d.replace("*", "x")


def make_inputs(case, sizes, seed):
    rng = np.random.default_rng(seed)
    return [MAKERS[kind](rng, tuple(_dim(d, sizes) for d in dims)) for kind, dims in case.inputs]


def _outputs(y):
    ys = list(y) if isinstance(y, (tuple, list)) else [y]
    return [t for t in ys if t is not None]


class Wrap:
    """A module calling case.call on its child, for the torch and the onnxkit side."""

    @staticmethod
    def of(lib_nn, F, module, call):
        class _Wrap(lib_nn.Module):
            def __init__(self):
                super().__init__()
                self.m = module

            def forward(self, *xs):
                y = call(self.m, list(xs), F)
                return tuple(_outputs(y)) if isinstance(y, (tuple, list)) else y
        return _Wrap()


def build(case):
    torch.manual_seed(0)
    tm = Wrap.of(torch.nn, torch.nn.functional, case.build(torch.nn) if case.build else None, case.call)
    om = Wrap.of(nn, nn.functional, case.build(nn) if case.build else None, case.call)
    assert list(om.state_dict()) == list(tm.state_dict()), f"{case.name}: state_dict keys"
    for k, v in om.state_dict().items():
        assert v.shape == tuple(tm.state_dict()[k].shape), f"{case.name}: {k} shape"
    om.load_state_dict(tm.state_dict())
    return tm, om


def check_case(case):
    tm, om = build(case)
    for mode in case.modes:
        tm.train(mode == "train"), om.train(mode == "train")
        xs = make_inputs(case, SIZES[0], 0)
        grad_in = [kind == "x" for kind, _ in case.inputs]
        tx = [torch.tensor(x, requires_grad=g) for x, g in zip(xs, grad_in)]
        ox = [ok.tensor(x, requires_grad=g) for x, g in zip(xs, grad_in)]
        ty, oy = _outputs(tm(*tx)), _outputs(om(*ox))
        assert len(ty) == len(oy), f"{case.name}: {len(oy)} outputs, torch {len(ty)}"
        for i, (a, b) in enumerate(zip(oy, ty)):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=case.rtol, atol=case.atol,
                                       err_msg=f"{case.name} [{mode}] output {i}")
        rng = np.random.default_rng(1)
        gs = [rng.standard_normal(tuple(b.shape)).astype(np.float32) for b in ty]
        t_loss = sum((b * torch.tensor(g)).sum() for b, g in zip(ty, gs))
        o_loss = sum((a * ok.tensor(g)).sum() for a, g in zip(oy, gs))
        names = [f"input{i}" for i, g in enumerate(grad_in) if g] + [n for n, _ in tm.named_parameters()]
        t_wrt = [t for t in tx if t.requires_grad] + list(tm.parameters())
        o_wrt = [t for t in ox if t.requires_grad] + list(om.parameters())
        tg = torch.autograd.grad(t_loss, t_wrt, allow_unused=True)
        og = ok.grad(o_loss, o_wrt, allow_unused=True)
        for name, a, b in zip(names, og, tg):
            if b is None:
                assert a is None or np.allclose(a.numpy(), 0), f"{case.name} [{mode}] grad {name}: torch has none"
                continue
            assert a is not None, f"{case.name} [{mode}] grad {name}: onnxkit has none"
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=case.rtol * 10, atol=case.atol * 10,
                                       err_msg=f"{case.name} [{mode}] grad {name}")
    if case.export:
        check_export(case, tm, om)


def check_export(case, tm, om):
    """Eval-mode export with every named dim symbolic; checked, then run at two other sizes."""
    tm.eval(), om.eval()
    inputs = []
    for i, (kind, dims) in enumerate(case.inputs):
        dtype = "bool" if kind in ("masked", "attend", "dead", "right") else "float32"
        inputs.append(ok.Input(f"x{i}", tuple(_dim_name(d) for d in dims), dtype))
    model = ok.export(om, inputs)
    onnx.checker.check_model(model, full_check=True)
    assert not {n.domain for n in model.graph.node} - {"", "ai.onnx"}, f"{case.name}: non-standard domains"
    for d in model.graph.input:
        named = [x.dim_param for x in d.type.tensor_type.shape.dim if x.dim_param]
        assert len(named) == sum(not isinstance(x, int) for x in case.inputs[int(d.name[1:])][1])
    sess = ok.Session(model)
    for k, sizes in enumerate(SIZES[1:]):
        xs = make_inputs(case, sizes, 10 + k)
        out = sess.run({f"x{i}": x for i, x in enumerate(xs)})
        with torch.no_grad():
            ty = _outputs(tm(*[torch.tensor(x) for x in xs]))
        for i, b in enumerate(ty):
            got = out[model.graph.output[i].name]
            np.testing.assert_allclose(got, b.numpy(), rtol=case.rtol, atol=case.atol,
                                       err_msg=f"{case.name} export at {sizes}, output {i}")


def causal_mask(m, n):
    """Transformer.generate_square_subsequent_mask of the module's library (n symbolic in onnxkit)."""
    return (torch.nn if isinstance(m, torch.nn.Module) else nn).Transformer.generate_square_subsequent_mask(n)


def sdpa(**kw):
    return lambda m, xs, F: F.scaled_dot_product_attention(*xs[:3], *xs[3:], **kw)


QKV = [("x", ("N", 2, "L", 4)), ("x", ("N", 2, "S", 4)), ("x", ("N", 2, "S", 4))]
E, H = 8, 2


def mha(**kw):
    return lambda nn: nn.MultiheadAttention(E, H, **kw)


def self_attn(**kw):
    return lambda m, xs, F: m(xs[0], xs[0], xs[0], **kw)


SEQ, BATCH = ("L", "N", E), ("N", "L", E)
SEQ_S, BATCH_S = ("S", "N", E), ("N", "S", E)

CASES = [
    # ----- scaled_dot_product_attention ------------------------------------------------------------
    Case("sdpa", None, QKV, sdpa()),
    Case("sdpa-causal", None, QKV, sdpa(is_causal=True)),
    Case("sdpa-bool-mask", None, QKV + [("attend", ("L", "S"))], sdpa()),
    Case("sdpa-float-mask", None, QKV + [("fmask", ("L", "S"))], sdpa()),
    Case("sdpa-mask-per-batch", None, QKV + [("attend", ("N", 1, "L", "S"))], sdpa()),
    Case("sdpa-fully-masked-row", None, QKV + [("dead", ("L", "S"))], sdpa()),
    Case("sdpa-scale", None, QKV + [("fmask", ("L", "S"))], sdpa(scale=0.3)),
    Case("sdpa-3d", None, [("x", ("N", "L", 4)), ("x", ("N", "S", 4)), ("x", ("N", "S", 6))], sdpa()),
    Case("sdpa-gqa", None, [("x", ("N", 4, "L", 4)), ("x", ("N", 2, "S", 4)), ("x", ("N", 2, "S", 4))],
         sdpa(enable_gqa=True)),
    Case("sdpa-causal-scale", None, QKV, sdpa(is_causal=True, scale=0.7)),
    # ----- MultiheadAttention ----------------------------------------------------------------------
    Case("mha-self", mha(), [("x", SEQ)], self_attn()),
    Case("mha-self-batch-first", mha(batch_first=True), [("x", BATCH)], self_attn()),
    Case("mha-4-heads", lambda nn: nn.MultiheadAttention(E, 4), [("x", SEQ)], self_attn()),
    Case("mha-cross-shared-kv", mha(), [("x", SEQ), ("x", SEQ_S)], lambda m, xs, F: m(xs[0], xs[1], xs[1])),
    Case("mha-cross", mha(batch_first=True), [("x", BATCH), ("x", BATCH_S), ("x", BATCH_S)]),
    Case("mha-kdim-vdim", mha(kdim=6, vdim=5), [("x", SEQ), ("x", ("S", "N", 6)), ("x", ("S", "N", 5))]),
    Case("mha-kdim-vdim-batch-first-no-weights", mha(kdim=6, vdim=5, batch_first=True),
         [("x", BATCH), ("x", ("N", "S", 6)), ("x", ("N", "S", 5))],
         lambda m, xs, F: m(*xs, need_weights=False)),
    Case("mha-add-bias-kv", mha(add_bias_kv=True), [("x", SEQ), ("x", SEQ_S), ("x", SEQ_S)]),
    Case("mha-add-zero-attn", mha(add_zero_attn=True), [("x", SEQ)], self_attn()),
    Case("mha-bias-kv-zero-attn-masks", mha(add_bias_kv=True, add_zero_attn=True, batch_first=True),
         [("x", BATCH), ("masked", ("N", "L")), ("fmask", ("L", "L"))],
         lambda m, xs, F: m(xs[0], xs[0], xs[0], key_padding_mask=xs[1], attn_mask=xs[2])),
    Case("mha-key-padding-bool", mha(), [("x", SEQ), ("x", SEQ_S), ("masked", ("N", "S"))],
         lambda m, xs, F: m(xs[0], xs[1], xs[1], key_padding_mask=xs[2])),
    Case("mha-key-padding-float", mha(batch_first=True), [("x", BATCH), ("fkpm", ("N", "L"))],
         lambda m, xs, F: m(xs[0], xs[0], xs[0], key_padding_mask=xs[1])),
    Case("mha-attn-mask-bool", mha(), [("x", SEQ), ("x", SEQ_S), ("masked", ("L", "S"))],
         lambda m, xs, F: m(xs[0], xs[1], xs[1], attn_mask=xs[2])),
    Case("mha-attn-mask-float", mha(batch_first=True), [("x", BATCH), ("fmask", ("L", "L"))],
         lambda m, xs, F: m(xs[0], xs[0], xs[0], attn_mask=xs[1])),
    Case("mha-attn-mask-3d", mha(), [("x", SEQ), ("x", SEQ_S), ("fmask", ("N*2", "L", "S"))],
         lambda m, xs, F: m(xs[0], xs[1], xs[1], attn_mask=xs[2])),
    Case("mha-attn-mask-and-padding", mha(batch_first=True),
         [("x", BATCH), ("masked", ("L", "L")), ("masked", ("N", "L"))],
         lambda m, xs, F: m(xs[0], xs[0], xs[0], attn_mask=xs[1], key_padding_mask=xs[2])),
    Case("mha-no-weights-padding", mha(), [("x", SEQ), ("masked", ("N", "L"))],
         lambda m, xs, F: m(xs[0], xs[0], xs[0], key_padding_mask=xs[1], need_weights=False)),
    Case("mha-per-head-weights", mha(batch_first=True), [("x", BATCH), ("x", BATCH_S)],
         lambda m, xs, F: m(xs[0], xs[1], xs[1], average_attn_weights=False)),
    Case("mha-is-causal", mha(batch_first=True), [("x", BATCH)],  # the mask is a hint here: torch ignores it
         lambda m, xs, F: m(xs[0], xs[0], xs[0], attn_mask=causal_mask(m, xs[0].shape[1]), is_causal=True,
                            need_weights=False)),
    Case("mha-is-causal-with-weights", mha(), [("x", SEQ), ("causal", ("L", "L"))],
         lambda m, xs, F: m(xs[0], xs[0], xs[0], attn_mask=xs[1], is_causal=True)),
    Case("mha-no-bias", mha(bias=False), [("x", SEQ), ("x", SEQ_S), ("x", SEQ_S)]),
    Case("mha-unbatched", mha(), [("x", ("L", E)), ("x", ("S", E)), ("masked", ("S",))],
         lambda m, xs, F: m(xs[0], xs[1], xs[1], key_padding_mask=xs[2])),
    Case("mha-unbatched-batch-first", mha(batch_first=True), [("x", ("L", E))], self_attn(need_weights=False)),
    Case("mha-train-mode", mha(batch_first=True), [("x", BATCH), ("masked", ("N", "L"))],
         lambda m, xs, F: m(xs[0], xs[0], xs[0], key_padding_mask=xs[1]), modes=("train", "eval")),
    Case("mha-functional", lambda nn: nn.MultiheadAttention(E, H, add_bias_kv=True), [("x", SEQ), ("x", SEQ_S)],
         lambda m, xs, F: F.multi_head_attention_forward(
             xs[0], xs[1], xs[1], E, H, m.in_proj_weight, m.in_proj_bias, m.bias_k, m.bias_v, False, 0.0,
             m.out_proj.weight, m.out_proj.bias, training=False)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_parity(case):
    check_case(case)


# ----- behaviour outside the table ---------------------------------------------------------------------
def test_fully_masked_rows_nan_with_weights_zero_without():
    """torch: need_weights=True (plain softmax) gives NaN for a query whose keys are all padded;
    the scaled_dot_product_attention path gives zeros (plus the output bias)."""
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H)
    om = nn.MultiheadAttention(E, H)
    om.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 2, E)).astype(np.float32)
    kpm = np.array([[False, False, True], [True, True, True]])
    for need in (True, False):
        t = tm(*[torch.tensor(x)] * 3, key_padding_mask=torch.tensor(kpm), need_weights=need)[0].detach().numpy()
        o = om(*[ok.tensor(x)] * 3, key_padding_mask=ok.tensor(kpm), need_weights=need)[0].numpy()
        np.testing.assert_allclose(o, t, rtol=1e-4, atol=1e-5)
        assert np.isnan(o[:, 1]).all() == need


def test_dropout_statistics_in_train_mode():
    """Attention dropout zeroes each weight with probability p and scales the rest by 1/(1-p); the
    mask is fresh per call and shared by forward and gradient."""
    ok.manual_seed(0)
    p, n = 0.3, 64
    q = ok.tensor(np.zeros((4, 2, n, 8), np.float32), requires_grad=True)  # uniform weights 1/n
    v = ok.tensor(np.eye(n, dtype=np.float32)[None, None].repeat(4, 0).repeat(2, 1))
    out = nn.functional.scaled_dot_product_attention(q, q[..., :8], v, dropout_p=p)
    w = out.numpy()  # with V = I the output is the dropped-out weight matrix itself
    assert abs((w == 0).mean() - p) < 0.02
    np.testing.assert_allclose(np.unique(w[w != 0]), [1 / n / (1 - p)], rtol=1e-5)
    again = nn.functional.scaled_dot_product_attention(q, q[..., :8], v, dropout_p=p).numpy()
    assert 0.3 < ((w == 0) != (again == 0)).mean() < 0.5
    g, = ok.grad((out * ok.tensor(w)).sum(), [q])
    assert np.isfinite(g.numpy()).all()
    m = nn.MultiheadAttention(8, 2, dropout=p, batch_first=True)
    x = ok.tensor(np.random.default_rng(0).standard_normal((4, 16, 8)).astype(np.float32))
    _, weights = m(x, x, x, average_attn_weights=False)
    w = weights.numpy()
    assert abs((w == 0).mean() - p) < 0.05  # 2048 weights: 5 standard deviations
    np.testing.assert_allclose(w.sum(-1).mean(), 1.0, atol=0.06)  # 1/(1-p) scaling keeps the expectation
    m.eval()
    _, weights = m(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)


def test_dropout_in_training_graph_differs_per_step_and_trains():
    """MultiheadAttention with dropout inside Trainer: the loss changes between steps with the same
    batch and parameters update; the training graph uses standard ops only."""
    ok.manual_seed(0)
    model = _SelfAttn(8)
    tr = ok.Trainer(model, nn.MSELoss(), ok.optim.SGD(model.parameters(), lr=0.0))
    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype(np.float32)
    losses = [tr.step(x, x) for _ in range(3)]
    assert len(set(losses)) == 3
    assert not {n.domain for n in tr.training_model.graph.node} - {"", "ai.onnx"}


class _SelfAttn(nn.Module):
    def __init__(self, e):
        super().__init__()
        self.attn = nn.MultiheadAttention(e, 2, dropout=0.5, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


def test_parameter_names_and_init_follow_torch():
    for kw in ({}, {"kdim": 6, "vdim": 5, "add_bias_kv": True}, {"bias": False}):
        t, o = torch.nn.MultiheadAttention(E, H, **kw), nn.MultiheadAttention(E, H, **kw)
        assert list(o.state_dict()) == list(t.state_dict())
        for (name, a), b in zip(o.state_dict().items(), t.state_dict().values()):
            assert a.shape == tuple(b.shape), name
    o = nn.MultiheadAttention(64, 4, add_bias_kv=True)
    bound = np.sqrt(6 / (64 + 3 * 64))  # xavier_uniform over (3E, E)
    w = o.in_proj_weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not o.in_proj_bias.numpy().any() and not o.out_proj.bias.numpy().any()
    assert o.bias_k.numpy().std() > 0


ERRORS = [
    (lambda: nn.MultiheadAttention(10, 3), ValueError, "divisible by num_heads"),
    (lambda: nn.functional.scaled_dot_product_attention(*[ok.randn(1, 2, 3, 4)] * 3, attn_mask=ok.ones(3, 3) > 0,
                                                        is_causal=True), ValueError, "attn_mask should not be set"),
    (lambda: nn.MultiheadAttention(8, 2)(*[ok.randn(3, 1, 8)] * 3, is_causal=True), RuntimeError,
     "Need attn_mask"),
    (lambda: nn.MultiheadAttention(8, 2)(*[ok.randn(3, 1, 8)] * 3, attn_mask=ok.ones(3, 3, dtype="int64")),
     TypeError, "only bool and floating types of attn_mask"),
]


@pytest.mark.parametrize("build,exc,match", ERRORS, ids=["heads", "sdpa-causal-mask", "mha-causal-hint", "mask-dtype"])
def test_errors(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


GRADCHECKS = [
    ("sdpa-float-mask", lambda q, k, v, m: nn.functional.scaled_dot_product_attention(q, k, v, m),
     [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3), (3, 5)], [0, 1, 2]),
    ("sdpa-causal-scale", lambda q, k, v: nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                                      scale=0.4),
     [(2, 4, 3), (2, 4, 3), (2, 4, 3)], None),
    ("mha-functional", lambda x, w, b, wo: nn.functional.multi_head_attention_forward(
        x, x, x, 4, 2, w, b, None, None, False, 0.0, wo, None, need_weights=False)[0],
     [(3, 2, 4), (12, 4), (12,), (4, 4)], None),
]


@pytest.mark.parametrize("name,fn,shapes,wrt", GRADCHECKS, ids=[g[0] for g in GRADCHECKS])
def test_gradcheck_float64(name, fn, shapes, wrt):
    """Central differences in float64 through the composed attention (reference evaluator)."""
    from gradcheck import gradcheck
    rng = np.random.default_rng(0)
    gradcheck(fn, [rng.standard_normal(s) for s in shapes], eps=1e-5, atol=1e-6, rtol=1e-5, wrt=wrt)
