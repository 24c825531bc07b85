"""Parity rows for the losses and distance layers, float64 finite differences for the composite
losses, weight buffers and build-time errors."""
import warnings

import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from gradcheck import gradcheck
from parity import Row, check_row, ids

F = ok.nn.functional
RED = ("mean", "sum", "none")


# ----- input makers: rng, batch -> [input, target, ...] ------------------------------------------
def normal(*shapes):
    return lambda rng, n: [rng.standard_normal((n,) + s).astype(np.float32) for s in shapes]


def classes(c, extra=(), ignore=None, dtype=np.int64):
    """Logits (n, c, *extra) and class indices (n, *extra); some set to `ignore`."""
    def make(rng, n):
        x = rng.standard_normal((n, c) + extra).astype(np.float32)
        t = rng.integers(0, c, (n,) + extra).astype(dtype)
        if ignore is not None:
            t.reshape(-1)[::3] = ignore
        return [x, t]
    return make


def log_probs(c, extra=(), ignore=None):
    def make(rng, n):
        x, t = classes(c, extra, ignore)(rng, n)
        return [torch.log_softmax(torch.tensor(x), 1).numpy(), t]
    return make


def probabilities(c, extra=()):
    def make(rng, n):
        x = rng.standard_normal((n, c) + extra).astype(np.float32)
        return [x, torch.softmax(torch.tensor(rng.standard_normal(x.shape).astype(np.float32)), 1).numpy()]
    return make


def unbatched(c):
    return lambda rng, n: [rng.standard_normal((c,)).astype(np.float32), np.array(rng.integers(0, c), np.int64)]


def bce(shape=(4,), hard=False):
    def make(rng, n):
        p = rng.uniform(0.05, 0.95, (n,) + shape).astype(np.float32)
        t = rng.integers(0, 2, p.shape) if hard else rng.uniform(0, 1, p.shape)
        return [p, t.astype(np.float32)]
    return make


def plus_minus(*shapes, int_target=False, target_shape=None):
    """Float inputs and a +-1 target of the first input's shape (or target_shape)."""
    def make(rng, n):
        xs = [rng.standard_normal((n,) + s).astype(np.float32) for s in shapes]
        ts = (n,) + (target_shape if target_shape is not None else shapes[0])
        t = rng.integers(0, 2, ts) * 2 - 1
        return xs + [t.astype(np.int64 if int_target else np.float32)]
    return make


def poisson(log_input=True, low=0.0):
    def make(rng, n):
        x = rng.standard_normal((n, 4)).astype(np.float32)
        if not log_input:
            x = np.abs(x) + 0.1
        return [x, (rng.poisson(2.0, (n, 4)) + low).astype(np.float32)]
    return make


def gaussian(var_shape, tiny=False):
    def make(rng, n):
        x, t = rng.standard_normal((2, n, 3, 4)).astype(np.float32)
        v = rng.uniform(0.2, 2.0, (n,) + var_shape).astype(np.float32)
        if tiny:
            v.reshape(-1)[::2] = 1e-8  # below eps: clamped without touching the gradient
        return [x, t, v]
    return make


def kl(log_target=False, zero=False):
    def make(rng, n):
        x = torch.log_softmax(torch.tensor(rng.standard_normal((n, 5)).astype(np.float32)), 1).numpy()
        t = torch.softmax(torch.tensor(rng.standard_normal((n, 5)).astype(np.float32)), 1).numpy()
        if zero:
            t[:, 0] = 0.0
        return [x, np.log(t) if log_target else t]
    return make


def multilabel(c=5):
    def make(rng, n):
        x = rng.standard_normal((n, c)).astype(np.float32)
        t = np.full((n, c), -1, np.int64)
        for i in range(n):
            k = rng.integers(0, c + 1)
            t[i, :k] = rng.permutation(c)[:k]
            if k + 1 < c:
                t[i, k + 1] = rng.integers(0, c)   # after the first -1: must be ignored
        return [x, t]
    return make


def multi_margin(c=4):
    return lambda rng, n: [rng.standard_normal((n, c)).astype(np.float32), rng.integers(0, c, (n,)).astype(np.int64)]


def weight(*values):
    return torch.tensor(values, dtype=torch.float32)


def reductions(name, ctor, make, kwargs=None, **row):
    return [Row(f"{name}-{r}", ctor, kwargs={**(kwargs or {}), "reduction": r}, make_inputs=make, **row) for r in RED]


ROWS = [
    *reductions("L1Loss", "L1Loss", normal((3, 4), (3, 4))),
    Row("L1Loss-broadcast", "L1Loss", make_inputs=normal((3, 4), (1, 4))),
    Row("L1Loss-legacy-size_average", "L1Loss", kwargs={"size_average": False}, make_inputs=normal((4,), (4,))),
    *reductions("MSELoss", "MSELoss", normal((3, 4), (3, 4))),
    Row("MSELoss-legacy-reduce", "MSELoss", kwargs={"reduce": False}, make_inputs=normal((4,), (4,))),
    Row("MSELoss-3d", "MSELoss", make_inputs=normal((2, 3, 2), (2, 3, 2))),
    *reductions("HuberLoss", "HuberLoss", normal((3, 4), (3, 4))),
    Row("HuberLoss-delta", "HuberLoss", kwargs={"delta": 0.3}, make_inputs=normal((3, 4), (3, 4))),
    Row("HuberLoss-delta-sum", "HuberLoss", ("sum", 2.0), make_inputs=normal((3, 4), (3, 4))),
    *reductions("SmoothL1Loss", "SmoothL1Loss", normal((3, 4), (3, 4))),
    Row("SmoothL1Loss-beta", "SmoothL1Loss", kwargs={"beta": 0.4}, make_inputs=normal((3, 4), (3, 4))),
    Row("SmoothL1Loss-beta0", "SmoothL1Loss", kwargs={"beta": 0.0}, make_inputs=normal((3, 4), (3, 4))),
    Row("SmoothL1Loss-legacy", "SmoothL1Loss", kwargs={"size_average": False, "reduce": True},
        make_inputs=normal((3, 4), (3, 4))),
    # cross-entropy: class indices, K-dim, weights, ignore_index, label smoothing, probabilities
    *reductions("CrossEntropyLoss", "CrossEntropyLoss", classes(5)),
    *reductions("CrossEntropyLoss-weight", "CrossEntropyLoss", classes(5), {"weight": weight(1, 2, 0.5, 3, 1.5)}),
    *reductions("CrossEntropyLoss-ignore", "CrossEntropyLoss", classes(5, ignore=-100)),
    *reductions("CrossEntropyLoss-ignore-class", "CrossEntropyLoss", classes(5, ignore=2), {"ignore_index": 2}),
    *reductions("CrossEntropyLoss-smoothing", "CrossEntropyLoss", classes(5), {"label_smoothing": 0.2}),
    *reductions("CrossEntropyLoss-all", "CrossEntropyLoss", classes(5, ignore=1),
                {"weight": weight(1, 2, 0.5, 3, 1.5), "ignore_index": 1, "label_smoothing": 0.1}),
    *reductions("CrossEntropyLoss-kdim", "CrossEntropyLoss", classes(4, (3, 2))),
    Row("CrossEntropyLoss-kdim-1", "CrossEntropyLoss", make_inputs=classes(3, (5,), ignore=-100)),
    Row("CrossEntropyLoss-kdim-all", "CrossEntropyLoss",
        kwargs={"weight": weight(1, 2, 3), "ignore_index": 0, "label_smoothing": 0.3},
        make_inputs=classes(3, (2, 2), ignore=0)),
    *reductions("CrossEntropyLoss-probs", "CrossEntropyLoss", probabilities(5)),
    Row("CrossEntropyLoss-probs-weight-smoothing", "CrossEntropyLoss",
        kwargs={"weight": weight(1, 2, 0.5, 3, 1.5), "label_smoothing": 0.25}, make_inputs=probabilities(5)),
    Row("CrossEntropyLoss-probs-kdim", "CrossEntropyLoss", make_inputs=probabilities(3, (2, 2))),
    Row("CrossEntropyLoss-unbatched", "CrossEntropyLoss", make_inputs=unbatched(6), dynamic_batch=False),
    Row("CrossEntropyLoss-legacy", "CrossEntropyLoss", kwargs={"size_average": False}, make_inputs=classes(5)),
    *reductions("NLLLoss", "NLLLoss", log_probs(5)),
    Row("NLLLoss-weight", "NLLLoss", (weight(1, 2, 0.5, 3, 1.5),), make_inputs=log_probs(5)),
    Row("NLLLoss-ignore", "NLLLoss", kwargs={"ignore_index": 3}, make_inputs=log_probs(5, ignore=3)),
    Row("NLLLoss-weight-ignore-none", "NLLLoss",
        kwargs={"weight": weight(1, 2, 0.5, 3, 1.5), "ignore_index": 3, "reduction": "none"},
        make_inputs=log_probs(5, ignore=3)),
    Row("NLLLoss-kdim", "NLLLoss", kwargs={"weight": weight(1, 2, 3)}, make_inputs=log_probs(3, (2, 3), ignore=-100)),
    Row("NLLLoss-legacy-reduce", "NLLLoss", kwargs={"reduce": False}, make_inputs=log_probs(4)),
    # probabilistic
    *reductions("PoissonNLLLoss", "PoissonNLLLoss", poisson()),
    Row("PoissonNLLLoss-not-log", "PoissonNLLLoss", (False,), make_inputs=poisson(log_input=False)),
    Row("PoissonNLLLoss-full", "PoissonNLLLoss", kwargs={"full": True}, make_inputs=poisson(low=0.5)),
    Row("PoissonNLLLoss-not-log-eps-full", "PoissonNLLLoss",
        kwargs={"log_input": False, "full": True, "eps": 0.1, "reduction": "sum"},
        make_inputs=poisson(log_input=False, low=0.5)),
    *reductions("GaussianNLLLoss", "GaussianNLLLoss", gaussian((3, 4))),
    Row("GaussianNLLLoss-full", "GaussianNLLLoss", kwargs={"full": True}, make_inputs=gaussian((3, 4))),
    Row("GaussianNLLLoss-var-short", "GaussianNLLLoss", make_inputs=gaussian((3,))),
    Row("GaussianNLLLoss-var-last1", "GaussianNLLLoss", make_inputs=gaussian((3, 1))),
    Row("GaussianNLLLoss-var-mid1", "GaussianNLLLoss", kwargs={"reduction": "none"}, make_inputs=gaussian((1, 4))),
    Row("GaussianNLLLoss-eps", "GaussianNLLLoss", kwargs={"eps": 1e-3, "reduction": "sum"},
        make_inputs=gaussian((3, 4), tiny=True), rtol=2e-4),
    *reductions("KLDivLoss", "KLDivLoss", kl()),
    Row("KLDivLoss-batchmean", "KLDivLoss", kwargs={"reduction": "batchmean"}, make_inputs=kl()),
    Row("KLDivLoss-log_target", "KLDivLoss", kwargs={"reduction": "batchmean", "log_target": True},
        make_inputs=kl(log_target=True)),
    Row("KLDivLoss-log_target-none", "KLDivLoss", kwargs={"reduction": "none", "log_target": True},
        make_inputs=kl(log_target=True)),
    Row("KLDivLoss-zero-target", "KLDivLoss", kwargs={"reduction": "sum"}, make_inputs=kl(zero=True), grad=False),
    *reductions("BCELoss", "BCELoss", bce()),
    Row("BCELoss-hard", "BCELoss", make_inputs=bce((3, 2), hard=True)),
    Row("BCELoss-weight", "BCELoss", (weight(1, 2, 0.5, 3),), make_inputs=bce()),
    Row("BCELoss-weight-none", "BCELoss", kwargs={"weight": weight(0.5, 2), "reduction": "none"},
        make_inputs=bce((3, 2))),
    *reductions("BCEWithLogitsLoss", "BCEWithLogitsLoss", normal((4,), (4,))),
    Row("BCEWithLogitsLoss-large", "BCEWithLogitsLoss",
        make_inputs=lambda rng, n: [rng.standard_normal((n, 4)).astype(np.float32) * 60,
                                    rng.uniform(0, 1, (n, 4)).astype(np.float32)]),
    Row("BCEWithLogitsLoss-pos_weight", "BCEWithLogitsLoss", kwargs={"pos_weight": weight(1, 2, 3, 0.5)},
        make_inputs=bce((4,))),
    Row("BCEWithLogitsLoss-weight-pos_weight-none", "BCEWithLogitsLoss",
        kwargs={"weight": weight(2, 0.5, 1, 1), "pos_weight": weight(3, 1, 0.2, 2), "reduction": "none"},
        make_inputs=normal((4,), (4,))),
    Row("BCEWithLogitsLoss-weight-sum", "BCEWithLogitsLoss", (weight(2, 0.5, 1, 3),), {"reduction": "sum"},
        make_inputs=normal((3, 4), (3, 4))),
    # margins and embeddings
    *reductions("MarginRankingLoss", "MarginRankingLoss", plus_minus((), ())),
    Row("MarginRankingLoss-margin", "MarginRankingLoss", (0.5,), make_inputs=plus_minus((), ())),
    *reductions("HingeEmbeddingLoss", "HingeEmbeddingLoss", plus_minus((4,))),
    Row("HingeEmbeddingLoss-margin", "HingeEmbeddingLoss", kwargs={"margin": 0.3}, make_inputs=plus_minus((4,))),
    Row("HingeEmbeddingLoss-int-target", "HingeEmbeddingLoss", make_inputs=plus_minus((4,), int_target=True)),
    *reductions("MultiLabelMarginLoss", "MultiLabelMarginLoss", multilabel()),
    Row("MultiLabelMarginLoss-unbatched", "MultiLabelMarginLoss", kwargs={"reduction": "none"},
        make_inputs=lambda rng, n: [a[0] for a in multilabel(6)(rng, 1)], dynamic_batch=False),
    *reductions("SoftMarginLoss", "SoftMarginLoss", plus_minus((4,), int_target=True)),
    *reductions("MultiLabelSoftMarginLoss", "MultiLabelSoftMarginLoss", bce((5,), hard=True)),
    Row("MultiLabelSoftMarginLoss-weight", "MultiLabelSoftMarginLoss", (weight(1, 2, 0.5, 3, 1),),
        make_inputs=bce((5,))),
    *reductions("CosineEmbeddingLoss", "CosineEmbeddingLoss", plus_minus((5,), (5,), target_shape=())),
    Row("CosineEmbeddingLoss-margin", "CosineEmbeddingLoss", (0.2,), make_inputs=plus_minus((5,), (5,), target_shape=())),
    Row("CosineEmbeddingLoss-int-target", "CosineEmbeddingLoss", kwargs={"margin": -0.5},
        make_inputs=plus_minus((5,), (5,), target_shape=(), int_target=True)),
    *reductions("MultiMarginLoss", "MultiMarginLoss", multi_margin()),
    Row("MultiMarginLoss-p2", "MultiMarginLoss", (2,), make_inputs=multi_margin()),
    Row("MultiMarginLoss-margin", "MultiMarginLoss", kwargs={"margin": 0.3}, make_inputs=multi_margin()),
    Row("MultiMarginLoss-weight", "MultiMarginLoss", kwargs={"p": 2, "margin": 2.0, "weight": weight(1, 2, 0.5, 3)},
        make_inputs=multi_margin()),
    Row("MultiMarginLoss-weight-none", "MultiMarginLoss", kwargs={"weight": weight(1, 2, 0.5, 3), "reduction": "none"},
        make_inputs=multi_margin()),
    *reductions("TripletMarginLoss", "TripletMarginLoss", normal((5,), (5,), (5,))),
    Row("TripletMarginLoss-p1", "TripletMarginLoss", kwargs={"p": 1.0, "margin": 2.0}, make_inputs=normal((5,), (5,), (5,))),
    Row("TripletMarginLoss-p3", "TripletMarginLoss", kwargs={"p": 3.0}, make_inputs=normal((5,), (5,), (5,))),
    Row("TripletMarginLoss-swap", "TripletMarginLoss", kwargs={"swap": True, "margin": 3.0},
        make_inputs=normal((5,), (5,), (5,))),
    Row("TripletMarginLoss-eps", "TripletMarginLoss", kwargs={"eps": 0.1, "reduction": "none"},
        make_inputs=normal((5,), (5,), (5,))),
    # distances
    Row("CosineSimilarity", "CosineSimilarity", make_inputs=normal((5,), (5,))),
    Row("CosineSimilarity-dim", "CosineSimilarity", (2,), make_inputs=normal((3, 4), (3, 4))),
    Row("CosineSimilarity-broadcast", "CosineSimilarity", kwargs={"dim": -1}, make_inputs=normal((3, 4), (1, 4))),
    Row("CosineSimilarity-eps", "CosineSimilarity", kwargs={"eps": 10.0}, make_inputs=normal((5,), (5,))),
    Row("PairwiseDistance", "PairwiseDistance", make_inputs=normal((5,), (5,))),
    Row("PairwiseDistance-p1", "PairwiseDistance", (1.0,), make_inputs=normal((5,), (5,))),
    Row("PairwiseDistance-p3-keepdim", "PairwiseDistance", kwargs={"p": 3.0, "keepdim": True},
        make_inputs=normal((5,), (5,))),
    Row("PairwiseDistance-eps", "PairwiseDistance", kwargs={"eps": 0.5}, make_inputs=normal((2, 5), (2, 5))),
    Row("PairwiseDistance-inf", "PairwiseDistance", (float("inf"),), make_inputs=normal((5,), (5,))),
]


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_parity(row):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's and onnxkit's deprecation notes for size_average/reduce
        check_row(row)


# ----- float64 finite differences through the composite losses (ReferenceEvaluator) ------------------
def _cls(rng):
    return [rng.standard_normal((3, 4)), np.array([0, 3, 1])]


GRADCHECKS = {
    "cross_entropy-weight-ignore-smoothing": (
        lambda x, t, w: F.cross_entropy(x, t, weight=w, ignore_index=1, label_smoothing=0.2),
        lambda rng: _cls(rng) + [np.array([1.0, 2.0, 0.5, 1.5])], [0]),
    "cross_entropy-picked-ignore": (lambda x, t: F.cross_entropy(x, t, ignore_index=1), _cls, [0]),
    "cross_entropy-picked-kdim-none": (lambda x, t: F.cross_entropy(x, t, reduction="none"),
                                       lambda rng: [rng.standard_normal((2, 3, 4)), rng.integers(0, 3, (2, 4))],
                                       [0]),
    "cross_entropy-probs": (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
                            lambda rng: [rng.standard_normal((2, 3)), rng.dirichlet(np.ones(3), 2)], None),
    "nll_loss-kdim": (lambda x, t: F.nll_loss(x, t, reduction="sum"),
                      lambda rng: [rng.standard_normal((2, 3, 2)), np.array([[0, 2], [1, 1]])], None),
    "bce_with_logits-pos_weight": (
        lambda x, t, pw: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw),
        lambda rng: [rng.standard_normal((2, 3)) * 3, rng.uniform(0, 1, (2, 3)), np.array([0.5, 2.0, 3.0])], [0, 1]),
    "bce-weight": (lambda x, t, w: F.binary_cross_entropy(x, t, weight=w),
                   lambda rng: [rng.uniform(0.1, 0.9, (2, 3)), rng.uniform(0, 1, (2, 3)), np.array([1.0, 2.0, 0.5])],
                   [0, 1]),
    "gaussian_nll-full": (lambda x, t, v: F.gaussian_nll_loss(x, t, v, full=True),
                          lambda rng: [rng.standard_normal((2, 3)), rng.standard_normal((2, 3)),
                                       rng.uniform(0.5, 2, (2, 1))], None),
    "poisson_nll-full": (lambda x, t: F.poisson_nll_loss(x, t, log_input=False, full=True),
                         lambda rng: [rng.uniform(0.5, 2, (2, 3)), rng.uniform(1.5, 4, (2, 3))], None),
    "kl_div-batchmean": (lambda x, t: F.kl_div(x, t, reduction="batchmean"),
                         lambda rng: [rng.standard_normal((2, 3)), rng.uniform(0.1, 1, (2, 3))], None),
    "huber": (lambda x, t: F.huber_loss(x, t, delta=0.7),
              lambda rng: [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))], None),
    "smooth_l1": (lambda x, t: F.smooth_l1_loss(x, t, beta=0.6),
                  lambda rng: [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))], None),
    "multilabel_margin": (F.multilabel_margin_loss,
                          lambda rng: [rng.standard_normal((2, 4)), np.array([[3, 0, -1, 1], [1, 2, 0, 3]])], None),
    "multi_margin-p2-weight": (lambda x, t, w: F.multi_margin_loss(x, t, p=2, margin=1.5, weight=w),
                               lambda rng: [rng.standard_normal((3, 4)), np.array([0, 3, 1]),
                                            np.array([1.0, 2.0, 0.5, 1.5])], [0]),
    "multilabel_soft_margin": (F.multilabel_soft_margin_loss,
                               lambda rng: [rng.standard_normal((2, 4)), rng.integers(0, 2, (2, 4)) * 1.0], None),
    "cosine_embedding": (lambda a, b, t: F.cosine_embedding_loss(a, b, t, margin=-0.2),
                         lambda rng: [rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), np.array([1, -1, -1])],
                         None),
    "triplet-swap-p1": (lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=4.0, p=1, swap=True),
                        lambda rng: [rng.standard_normal((2, 3)) for _ in range(3)], None),
    "cosine_similarity": (lambda a, b: F.cosine_similarity(a, b, dim=1),
                          lambda rng: [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))], None),
}


@pytest.mark.parametrize("name", list(GRADCHECKS))
def test_gradcheck(name):
    fn, make, wrt = GRADCHECKS[name]
    gradcheck(fn, make(np.random.default_rng(11)), wrt=wrt)


# ----- weight buffers ---------------------------------------------------------------------------------
def test_weight_accepts_numpy_and_is_a_buffer():
    w = np.array([1.0, 2.0, 0.5], np.float32)
    om, tm = nn.CrossEntropyLoss(weight=w), torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    assert list(om.state_dict()) == list(tm.state_dict()) == ["weight"]
    assert [n for n, _ in om.named_buffers()] == ["weight"] and not list(om.parameters())
    np.testing.assert_array_equal(om.state_dict()["weight"], w)
    om.load_state_dict({"weight": torch.tensor([3.0, 1.0, 1.0])})
    x, t = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), np.array([0, 1, 2, 0])
    np.testing.assert_allclose(om(ok.tensor(x), ok.tensor(t)).numpy(),
                               torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t),
                                                                 weight=torch.tensor([3.0, 1.0, 1.0])).numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("ctor,kwargs", [
    ("BCEWithLogitsLoss", {"weight": np.ones(3, np.float32), "pos_weight": np.full(3, 2.0, np.float32)}),
    ("BCEWithLogitsLoss", {"pos_weight": np.full(3, 2.0, np.float32)}),
    ("BCELoss", {"weight": np.ones(3, np.float32)}),
    ("NLLLoss", {"weight": np.ones(3, np.float32)}),
    ("MultiMarginLoss", {"weight": np.ones(3, np.float32)}),
    ("MultiLabelSoftMarginLoss", {"weight": np.ones(3, np.float32)}),
    ("CrossEntropyLoss", {}),
])
def test_buffer_keys_match_torch(ctor, kwargs):
    om = getattr(nn, ctor)(**kwargs)
    tm = getattr(torch.nn, ctor)(**{k: torch.tensor(v) for k, v in kwargs.items()})
    assert list(om.state_dict()) == list(tm.state_dict())
    assert [n for n, _ in om.named_buffers()] == [n for n, _ in tm.named_buffers()]


def test_weight_accepts_tensor():
    w = ok.tensor(np.array([1.0, 2.0], np.float32))
    m = nn.BCEWithLogitsLoss(pos_weight=w)
    assert m.pos_weight is w and m.weight is None


def test_int32_targets():
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((4, 5)).astype(np.float32), rng.integers(0, 5, (4,))
    ref = F.cross_entropy(ok.tensor(x), ok.tensor(t.astype(np.int64)), ignore_index=2, label_smoothing=0.1).numpy()
    got = F.cross_entropy(ok.tensor(x), ok.tensor(t.astype(np.int32)), ignore_index=2, label_smoothing=0.1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    xm = ok.tensor(x, requires_grad=True)
    g, = ok.grad(F.multi_margin_loss(xm, ok.tensor(t.astype(np.int32))), [xm])
    tx = torch.tensor(x, requires_grad=True)
    tg, = torch.autograd.grad(torch.nn.functional.multi_margin_loss(tx, torch.tensor(t)), [tx])
    np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-5, atol=1e-6)


def test_functional_weight_for_regression_losses():
    rng = np.random.default_rng(2)
    x, t, w = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3))
    w = np.abs(w)
    for name in ("l1_loss", "mse_loss", "huber_loss"):
        for red in RED:
            got = getattr(F, name)(ok.tensor(x), ok.tensor(t), reduction=red, weight=ok.tensor(w)).numpy()
            want = getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(t), reduction=red,
                                                      weight=torch.tensor(w)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{name} {red}")


def test_gaussian_nll_float_var():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((2, 3, 4)).astype(np.float32)
    got = F.gaussian_nll_loss(ok.tensor(x), ok.tensor(t), 0.5, full=True).numpy()
    want = torch.nn.functional.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), 0.5, full=True).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_cross_entropy_in_training_step():
    """A Linear + CrossEntropyLoss step with a symbolic batch exports and runs in onnxruntime."""
    torch.manual_seed(0)
    tl = torch.nn.Linear(4, 3)
    ol = nn.Linear(4, 3)
    ol.load_state_dict(tl.state_dict())
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 3, (6,))
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)(ol(ok.tensor(x)), ok.tensor(t))
    gw, = ok.grad(loss, [ol.weight])
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(tl(torch.tensor(x)), torch.tensor(t))
    tgw, = torch.autograd.grad(tloss, [tl.weight])
    np.testing.assert_allclose(gw.numpy(), tgw.numpy(), rtol=1e-4, atol=1e-6)


# ----- build-time errors ---------------------------------------------------------------------------------
def _x(*shape, dtype=np.float32):
    return ok.tensor(np.zeros(shape, dtype))


ERRORS = [
    ("CE-target-batch", lambda: nn.CrossEntropyLoss()(_x(3, 4), _x(2, dtype=np.int64)),
     nn.ShapeError, r"CrossEntropyLoss: expected target of shape \(3,\) for input of shape \(3, 4\), got \(2,\)"),
    ("CE-target-kdim", lambda: nn.CrossEntropyLoss()(_x(3, 4, 5), _x(3, 4, dtype=np.int64)),
     nn.ShapeError, r"expected target of shape \(3, 5\)"),
    ("CE-int-probabilities", lambda: nn.CrossEntropyLoss()(_x(3, 4), _x(3, 4, dtype=np.int64)),
     TypeError, "floating point target for class probabilities"),
    ("CE-probabilities-ignore_index", lambda: nn.CrossEntropyLoss(ignore_index=1)(_x(3, 4), _x(3, 4)),
     ValueError, "ignore_index is not supported"),
    ("CE-weight-length", lambda: nn.CrossEntropyLoss(weight=np.ones(3, np.float32))(_x(3, 4), _x(3, dtype=np.int64)),
     nn.ShapeError, "weight must have 4 entries"),
    ("CE-label_smoothing", lambda: nn.CrossEntropyLoss(label_smoothing=1.5), ValueError, "between 0.0 and 1.0"),
    ("NLL-float-target", lambda: nn.NLLLoss()(_x(3, 4), _x(3)), TypeError, "integer class-index target"),
    ("BCE-target-shape", lambda: nn.BCELoss()(_x(3, 4), _x(3, 1)),
     ValueError, r"target size \(3, 1\) must be the same as input size \(3, 4\)"),
    ("BCEWithLogits-target-shape", lambda: nn.BCEWithLogitsLoss()(_x(3, 4), _x(4)), ValueError, "must be the same"),
    ("bad-reduction-module", lambda: nn.MSELoss(reduction="avg"),
     ValueError, "'avg' is not a valid value for reduction; expected one of 'none', 'mean', 'sum'"),
    ("bad-reduction-functional", lambda: F.l1_loss(_x(2), _x(2), reduction="batchmean"),
     ValueError, "expected one of 'none', 'mean', 'sum'"),
    ("bad-reduction-kl", lambda: nn.KLDivLoss(reduction="avg"), ValueError, "'batchmean'"),
    ("MultiMargin-p", lambda: nn.MultiMarginLoss(p=3), ValueError, "only p == 1 and p == 2"),
    ("MultiMargin-weight-2d", lambda: nn.MultiMarginLoss(weight=np.ones((2, 2), np.float32)), ValueError, "1D"),
    ("MultiMargin-target-shape", lambda: nn.MultiMarginLoss()(_x(3, 4), _x(3, 4, dtype=np.int64)),
     nn.ShapeError, "expected input"),
    ("Triplet-margin", lambda: nn.TripletMarginLoss(margin=0.0), ValueError, "greater than 0"),
    ("Triplet-ranks", lambda: nn.TripletMarginLoss()(_x(2, 3), _x(2, 3), _x(3)), nn.ShapeError, "same number of dim"),
    ("MarginRanking-ranks", lambda: nn.MarginRankingLoss()(_x(3), _x(3), _x(3, 1)), nn.ShapeError, "same number"),
    ("CosineEmbedding-target", lambda: nn.CosineEmbeddingLoss()(_x(3, 4), _x(3, 4), _x(3, 4)),
     nn.ShapeError, "0-D or 1-D target"),
    ("MultiLabelMargin-target", lambda: nn.MultiLabelMarginLoss()(_x(3, 4), _x(3, 5, dtype=np.int64)),
     nn.ShapeError, "same shape"),
    ("GaussianNLL-var-size", lambda: nn.GaussianNLLLoss()(_x(3, 4), _x(3, 4), _x(2, 4) + 1.0),
     nn.ShapeError, "var is of incorrect size"),
    ("GaussianNLL-var-negative", lambda: nn.GaussianNLLLoss()(_x(3, 4), _x(3, 4), ok.tensor(-np.ones((3, 4), np.float32))),
     ValueError, "negative"),
    ("SmoothL1-beta", lambda: nn.SmoothL1Loss(beta=-1.0), ValueError, "non-negative"),
    ("l1-weight-shape", lambda: F.l1_loss(_x(3, 4), _x(3, 4), weight=_x(4)), ValueError, "same size"),
]


@pytest.mark.parametrize("name,fn,exc,match", ERRORS, ids=[e[0] for e in ERRORS])
def test_build_time_errors(name, fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_error_names_layer_path():
    model = nn.Sequential(nn.Linear(4, 3))
    head = nn.ModuleDict({"loss": nn.CrossEntropyLoss()})

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = model, head

        def forward(self, x, t):
            return self.head["loss"](self.body(x), t)
    with pytest.raises(nn.ShapeError, match=r"^head\.loss \(CrossEntropyLoss\): expected target of shape"):
        Net()(_x(2, 4), _x(3, dtype=np.int64))


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("target,extra", [([0, 7, 1], {}), ([0, -1, 1], {}), ([0, 5, 1], {"label_smoothing": 0.1}),
                                          ([0, 9, 1], {"weight": np.ones(5, np.float32)})])
def test_out_of_range_class_targets_raise_like_torch(fn, target, extra):
    """Regression: an index >= C or < 0 (other than ignore_index) silently gave nan later; torch raises."""
    if fn == "nll_loss":
        extra = {k: v for k, v in extra.items() if k != "label_smoothing"}
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    bad = [v for v in target if not 0 <= v < 5][0]
    t_extra = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in extra.items()}
    with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
        getattr(torch.nn.functional, fn)(torch.tensor(x), torch.tensor(target), **t_extra)
    for t in (np.array(target), ok.tensor(np.array(target)), np.array(target, np.int32)):
        with pytest.raises(IndexError, match=rf"Target {bad} is out of bounds.*5 classes"):
            getattr(F, fn)(ok.tensor(x), t, **extra)


def test_class_targets_equal_to_ignore_index_or_symbolic_are_not_range_checked():
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    t = np.array([0, 7, 1])
    want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), ignore_index=7).item()
    np.testing.assert_allclose(F.cross_entropy(ok.tensor(x), t, ignore_index=7).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(nn.NLLLoss()(ok.tensor(x), np.array([2, -100, 4])).numpy(),
                               torch.nn.NLLLoss()(torch.tensor(x), torch.tensor([2, -100, 4])).item(), rtol=1e-5)
    F.cross_entropy(ok.Input("x", ("N", 5)), ok.Input("t", ("N",), "int64"))  # graph inputs: checked at run time
