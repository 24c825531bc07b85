"""Module system and containers against torch.nn: registration, traversal, state dicts, modes,
printing, container operations, the seed's container examples, module paths in node names and
error messages, LazyLinear, and Bilinear/Unflatten parity rows."""
import collections
import copy
import inspect
import re

import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from onnxkit.nn.parameter import Buffer
from parity import Row, check_row, ids

LIBS = {"torch": (torch.nn, torch.tensor), "ok": (nn, ok.tensor)}


def build_net(lib):
    """The same model in torch.nn or onnxkit.nn: nested containers, a shared module and a shared
    parameter, a persistent and a non-persistent buffer, and an absent bias."""
    nn_, T = LIBS[lib]

    class Net(nn_.Module):
        def __init__(self):
            super().__init__()
            self.features = nn_.Sequential(nn_.Linear(4, 8), nn_.Identity(), nn_.Linear(8, 8, bias=False))
            self.head = nn_.ModuleDict({"cls": nn_.Linear(8, 3), "reg": nn_.Linear(8, 1)})
            self.extra = nn_.ModuleList([nn_.Linear(3, 3), nn_.Flatten()])
            self.scale = nn_.Parameter(T(np.ones(3, np.float32)))
            self.register_buffer("count", T(np.zeros(1, np.float32)))
            self.register_buffer("scratch", T(np.zeros(2, np.float32)), persistent=False)
            self.register_parameter("absent", None)
            self.tied = self.features[0]              # a module reachable by two paths
            self.params = nn_.ParameterList([self.scale, nn_.Parameter(T(np.ones(2, np.float32)))])

        def forward(self, x):
            h = self.features(x)
            return self.head["cls"](h) * self.scale

    return Net()


def names(it):
    return [n for n, _ in it]


TRAVERSALS = {
    "named_parameters": lambda m: names(m.named_parameters()),
    "named_parameters-prefix": lambda m: names(m.named_parameters(prefix="model")),
    "named_parameters-norecurse": lambda m: names(m.named_parameters(recurse=False)),
    "named_parameters-duplicates": lambda m: names(m.named_parameters(remove_duplicate=False)),
    "named_buffers": lambda m: names(m.named_buffers()),
    "named_buffers-duplicates": lambda m: names(m.named_buffers(remove_duplicate=False)),
    "named_children": lambda m: names(m.named_children()),
    "children": lambda m: [type(c).__name__ for c in m.children()],
    "named_modules": lambda m: names(m.named_modules()),
    "named_modules-prefix": lambda m: names(m.named_modules(prefix="net")),
    "named_modules-duplicates": lambda m: names(m.named_modules(remove_duplicate=False)),
    "modules": lambda m: [type(c).__name__ for c in m.modules()],
    "parameters-shapes": lambda m: [tuple(p.shape) for p in m.parameters()],
    "buffers-shapes": lambda m: [tuple(b.shape) for b in m.buffers()],
    "state_dict-keys": lambda m: list(m.state_dict()),
    "state_dict-shapes": lambda m: [tuple(v.shape) for v in m.state_dict().values()],
    "state_dict-prefix": lambda m: list(m.state_dict(prefix="model.")),
    "dir-has-members": lambda m: [k in dir(m) for k in ("features", "scale", "count", "absent", "forward")],
    "apply-order": lambda m: _apply_order(m),
}


def _apply_order(m):
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    return seen


@pytest.mark.parametrize("name", TRAVERSALS)
def test_traversal_matches_torch(name):
    fn = TRAVERSALS[name]
    assert fn(build_net("ok")) == fn(build_net("torch"))


def test_state_dict_values_are_copies():
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    before = m.weight.numpy().copy()
    sd["weight"][...] = 7.0
    np.testing.assert_array_equal(m.weight.numpy(), before)
    assert m.state_dict(keep_vars=True)["weight"] is m.weight


def test_state_dict_sees_deferred_updates():
    m = nn.Linear(3, 2)
    w0 = m.weight.numpy().copy()
    with ok.no_grad():
        m.weight -= ok.tensor(np.ones((2, 3), np.float32))
    np.testing.assert_allclose(m.state_dict()["weight"], w0 - 1)


def _torch_and_ok(lib_build):
    torch.manual_seed(0)
    tm, om = lib_build("torch"), lib_build("ok")
    return tm, om


@pytest.mark.parametrize("convert", [lambda v: v, lambda v: v.numpy(), lambda v: ok.tensor(v.numpy()),
                                     lambda v: v.double().numpy()], ids=["torch", "numpy", "ok", "float64"])
def test_load_state_dict_from_torch_model(convert):
    tm, om = _torch_and_ok(build_net)
    with torch.no_grad():
        tm.count.fill_(3.0)
    res = om.load_state_dict({k: convert(v) for k, v in tm.state_dict().items()})
    assert res.missing_keys == [] and res.unexpected_keys == [] and str(res) == "<All keys matched successfully>"
    for k, v in om.state_dict().items():
        np.testing.assert_array_equal(v, tm.state_dict()[k].numpy(), err_msg=k)
        assert v.dtype == np.float32
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(om(ok.tensor(x)).numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


LOAD_ERRORS = [  # (state dict edit, strict, expected message pieces)
    ("missing", lambda sd: sd.pop("head.cls.bias"), True, ['Missing key(s) in state_dict: "head.cls.bias"']),
    ("unexpected", lambda sd: sd.update({"head.cls.extra": np.zeros(1), "nope": np.zeros(1)}), True,
     ['Unexpected key(s) in state_dict: "head.cls.extra", "nope"']),
    ("size", lambda sd: sd.update({"features.0.weight": np.zeros((8, 5), np.float32)}), False,
     ["size mismatch for features.0.weight: copying a param with shape (8, 5) from checkpoint, "
      "the shape in current model is (8, 4)"]),
    ("size-strict", lambda sd: sd.update({"scale": np.zeros(4, np.float32)}), True, ["size mismatch for scale"]),
    ("not-an-array", lambda sd: sd.update({"count": "three"}), True, ['While copying the parameter named "count"']),
]


@pytest.mark.parametrize("case", LOAD_ERRORS, ids=[c[0] for c in LOAD_ERRORS])
def test_load_state_dict_errors(case):
    _, edit, strict, pieces = case
    om = build_net("ok")
    sd = om.state_dict()
    edit(sd)
    with pytest.raises(RuntimeError) as e:
        om.load_state_dict(sd, strict=strict)
    assert str(e.value).startswith("Error(s) in loading state_dict for Net:")
    for p in pieces:
        assert p in str(e.value)


def test_load_state_dict_non_strict_reports_like_torch():
    results = []
    for lib in ("torch", "ok"):
        m = build_net(lib)
        sd = dict(m.state_dict())
        sd.pop("features.2.weight"), sd.pop("count")
        sd["bogus.weight"] = sd["scale"]
        res = m.load_state_dict(sd, strict=False)
        results.append((sorted(res.missing_keys), sorted(res.unexpected_keys)))
    assert results[0] == results[1] == (["count", "features.2.weight"], ["bogus.weight"])


def test_load_state_dict_scalar_and_assign():
    m = nn.Module()
    m.t = nn.Parameter(np.float32(2.0))
    m.load_state_dict({"t": np.array([5.0], np.float32)})  # torch accepts a 1-element 1-D value for a 0-d entry
    assert m.t.numpy() == 5.0
    lin = nn.Linear(2, 2)
    old = lin.weight
    lin.load_state_dict({"weight": np.eye(2, dtype=np.float32), "bias": np.zeros(2, np.float32)}, assign=True)
    assert lin.weight is not old and isinstance(lin.weight, nn.Parameter) and lin.weight.requires_grad
    np.testing.assert_array_equal(lin.weight.numpy(), np.eye(2))


def test_non_persistent_buffer_and_buffer_type():
    m = nn.Module()
    m.register_buffer("a", np.ones(2, np.float32))
    m.register_buffer("b", np.ones(3, np.float32), persistent=False)
    m.c = Buffer(np.zeros(4, np.float32))
    m.d = Buffer(np.zeros(1, np.float32), persistent=False)
    assert list(m.state_dict()) == ["a", "c"]
    assert names(m.named_buffers()) == ["a", "b", "c", "d"]
    m.register_buffer("b", m.b)  # re-registering as persistent
    assert list(m.state_dict()) == ["a", "b", "c"]
    m.a = np.full(2, 3.0, np.float32)  # assigning an array to a buffer keeps it a buffer
    np.testing.assert_array_equal(m.state_dict()["a"], [3.0, 3.0])
    with pytest.raises(RuntimeError, match='Unexpected key.*"d"'):
        m.load_state_dict({**m.state_dict(), "d": np.zeros(1, np.float32)})


def test_train_eval_propagate_through_overrides():
    calls = []

    class Custom(nn.Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(Custom()))
    assert m.eval() is m
    assert not any(x.training for x in m.modules()) and calls == [False]
    m.train()
    assert all(x.training for x in m.modules()) and calls == [False, True]
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        m.train("yes")


def test_requires_grad_and_zero_grad():
    m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    assert all(p.requires_grad for p in m.parameters())
    m[0].requires_grad_(False)
    assert [p.requires_grad for p in m.parameters()] == [False, False, True, True]
    m.requires_grad_()
    m(ok.tensor(np.ones((4, 3), np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


REGISTRATION_ERRORS = [
    ("param-type", lambda m: m.register_parameter("w", ok.tensor(np.ones(2, np.float32))), TypeError,
     "cannot assign 'Tensor' object to parameter 'w'"),
    ("param-dot", lambda m: m.register_parameter("a.b", None), KeyError, 'contain "."'),
    ("param-empty", lambda m: m.register_parameter("", None), KeyError, "empty string"),
    ("param-exists", lambda m: m.register_parameter("plain", None), KeyError, "attribute 'plain' already exists"),
    ("buffer-dot", lambda m: m.register_buffer("a.b", None), KeyError, 'contain "."'),
    ("buffer-name-type", lambda m: m.register_buffer(3, None), TypeError, "buffer name should be a string"),
    ("module-type", lambda m: m.add_module("x", 3), TypeError, "int is not a Module subclass"),
    ("assign-tensor-to-param", lambda m: setattr(m, "w", ok.tensor(np.ones(2, np.float32))), TypeError,
     "cannot assign 'Tensor' as parameter 'w'"),
    ("assign-int-to-module", lambda m: setattr(m, "sub", 3), TypeError, "cannot assign 'int' as child module 'sub'"),
    ("submodule-missing", lambda m: m.get_submodule("sub.nope"), AttributeError, "Linear has no attribute `nope`"),
    ("submodule-not-module", lambda m: m.get_submodule("sub.weight"), AttributeError, "`weight` is not an nn.Module"),
    ("param-int-requires-grad", lambda m: nn.Parameter(np.arange(3)), RuntimeError, "floating-point"),
]


@pytest.mark.parametrize("case", REGISTRATION_ERRORS, ids=[c[0] for c in REGISTRATION_ERRORS])
def test_registration_errors(case):
    _, fn, exc, msg = case
    m = nn.Module()
    m.plain = 1
    m.w = nn.Parameter(np.ones(2, np.float32))
    m.sub = nn.Linear(2, 2)
    with pytest.raises(exc, match=re.escape(msg)):
        fn(m)


def test_before_init_and_reassignment():
    class Early(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Early()
    m = nn.Module()
    m.x = nn.Parameter(np.ones(2, np.float32))
    with pytest.raises(TypeError, match="cannot assign 'Linear' as parameter 'x'"):
        m.x = nn.Linear(2, 2)                   # as torch: a parameter slot takes Parameters or None
    del m.x
    m.x = nn.Linear(2, 2)
    m.x = nn.Parameter(np.ones(2, np.float32))  # a Parameter replaces a module of the same name
    assert names(m.named_parameters()) == ["x"] and list(m.children()) == []
    del m.x
    m.x = nn.Linear(2, 2)
    m.x = None                                  # a module slot may be set to None
    assert list(m.named_children()) == [] and m.x is None
    m.register_parameter("p", None)
    assert m.p is None and list(m.state_dict()) == []
    del m.x
    with pytest.raises(AttributeError):
        m.x
    assert m.get_submodule("") is m
    m.sub = nn.Sequential(nn.Linear(2, 3))
    assert m.get_submodule("sub.0") is m.sub[0] and m.get_parameter("sub.0.bias") is m.sub[0].bias


def test_parameter():
    p = nn.Parameter(ok.randn(2, 3))
    assert p.requires_grad and p.dtype == np.float32 and p.shape == (2, 3) and p.is_leaf
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32              # Python floats: float32 as in torch
    assert nn.Parameter(np.zeros(2)).dtype == np.float64             # numpy arrays keep their dtype
    assert nn.Parameter(torch.ones(2, dtype=torch.float64)).dtype == np.float64
    assert nn.Parameter(np.arange(3), requires_grad=False).dtype == np.int64
    assert nn.Parameter().shape == (0,)
    src = np.ones(2, np.float32)
    q = nn.Parameter(src)
    src[0] = 5
    assert q.numpy()[0] == 1                                         # holds a copy
    assert repr(q).startswith("Parameter containing:")


def test_forward_hooks():
    m = nn.Linear(2, 2)
    seen = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = m.register_forward_hook(lambda mod, args, out: seen.append(out.shape) or out + 1)
    y = m(ok.tensor(np.ones((3, 2), np.float32)))
    np.testing.assert_allclose(y.numpy(), np.broadcast_to(m.bias.numpy() + 1, (3, 2)), rtol=1e-6)
    assert seen == [(3, 2)]
    h1.remove(), h2.remove()
    x = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(m(ok.tensor(x)).numpy(), x @ m.weight.numpy().T + m.bias.numpy(), rtol=1e-6)


def test_to_double_and_deepcopy():
    m = nn.Sequential(nn.Linear(3, 2))
    w = m[0].weight
    m.double()
    assert m[0].weight is w and w.dtype == np.float64 and m.state_dict()["0.weight"].dtype == np.float64
    y = m(ok.tensor(np.ones((2, 3))))
    assert y.dtype == np.float64
    m.to(torch.float32)
    assert w.dtype == np.float32
    m.to("cpu")
    assert w.dtype == np.float32
    c = copy.deepcopy(m)
    assert c[0].weight is not w and isinstance(c[0].weight, nn.Parameter)
    np.testing.assert_array_equal(c[0].weight.numpy(), w.numpy())
    with ok.no_grad():
        c[0].weight.fill_(0.0)
    assert w.numpy().any()


# ----- printing --------------------------------------------------------------------------------
def _repr_models(lib):
    nn_, T = LIBS[lib]
    OD = collections.OrderedDict

    class Empty(nn_.Module):
        def forward(self, x):
            return x

    return {
        "sequential": nn_.Sequential(nn_.Linear(4, 3), nn_.Linear(3, 2, bias=False)),
        "nested": nn_.Sequential(OD([("enc", nn_.Sequential(nn_.Linear(2, 2), nn_.Identity())),
                                     ("flat", nn_.Flatten()), ("un", nn_.Unflatten(1, (2, 1)))])),
        "modulelist-runs": nn_.ModuleList([nn_.Linear(2, 2)] * 3 + [nn_.Linear(2, 3)] + [nn_.Linear(3, 3)] * 2),
        "modulelist-empty": nn_.ModuleList(),
        "modulelist-nested": nn_.ModuleList([nn_.Sequential(nn_.Linear(1, 1)) for _ in range(2)]),
        "moduledict": nn_.ModuleDict({"b": nn_.Linear(1, 2), "a": nn_.Bilinear(2, 3, 4)}),
        "parameterlist": nn_.ParameterList([nn_.Parameter(T(np.zeros((2, 3), np.float32))),
                                            nn_.Parameter(T(np.zeros(4, np.float32)))]),
        "parameterdict": nn_.ParameterDict({"w": nn_.Parameter(T(np.zeros((5, 1), np.float32)))}),
        "custom-empty": Empty(),
        "custom-children": _with_children(nn_, Empty()),
    }


def _with_children(nn_, m):
    m.body = nn_.ModuleList([nn_.Linear(2, 2), nn_.Linear(2, 2)])
    m.head = nn_.Linear(2, 1)
    m.gone = None
    return m


def _torch_repr(m):
    """torch's repr with its dtype names (torch.float32, torch.FloatTensor) written as numpy's."""
    return re.sub(r"torch\.(float32|FloatTensor)", "float32", repr(m))


@pytest.mark.parametrize("name", list(_repr_models("ok")))
def test_repr_matches_torch(name):
    want = _torch_repr(_repr_models("torch")[name])
    assert repr(_repr_models("ok")[name]) == want


LAYER_REPRS = [  # (class name, args, kwargs): the layers' own extra_repr against torch's
    ("Conv2d", (3, 4, 3), {"padding": "same", "bias": False, "padding_mode": "reflect"}),
    ("ConvTranspose1d", (2, 4, 3), {"stride": 2, "output_padding": 1, "dilation": 2, "groups": 2}),
    ("MaxPool1d", (3, 2, 1), {"ceil_mode": True}),
    ("MaxUnpool1d", (3, 1), {}),
    ("MaxUnpool2d", (2,), {}),
    ("AvgPool1d", (3,), {}),
    ("AvgPool3d", (2, 1), {"ceil_mode": True}),
    ("LPPool2d", (2, 3), {}),
    ("AdaptiveAvgPool2d", ((2, None),), {}),
    ("ReLU", (True,), {}),
    ("ELU", (0.5, True), {}),
    ("GELU", ("tanh",), {}),
    ("RReLU", (0.1, 0.3, True), {}),
    ("Hardshrink", (), {}),
    ("Softshrink", (0.3,), {}),
    ("Threshold", (0.1, 2), {}),
    ("Hardtanh", (-2.0, 2.0), {}),
    ("PReLU", (3,), {}),
    ("Softmax", (1,), {}),
    ("MSELoss", (), {"reduction": "sum"}),
    ("CrossEntropyLoss", (), {"label_smoothing": 0.1}),
    ("KLDivLoss", (), {"reduction": "batchmean"}),
    ("TripletMarginLoss", (), {"margin": 2.0}),
    ("BatchNorm2d", (3,), {"momentum": None, "affine": False}),
    ("BatchNorm1d", (3,), {"bias": False}),
    ("InstanceNorm2d", (3,), {}),
    ("LayerNorm", ((2, 3),), {"bias": False}),
    ("GroupNorm", (2, 4), {}),
    ("LocalResponseNorm", (2,), {}),
    ("Dropout2d", (0.2,), {}),
    ("ReflectionPad2d", (1,), {}),
    ("ZeroPad1d", (1,), {}),
    ("ConstantPad2d", ((1, 2, 3, 4), 0.5), {}),
    ("Embedding", (10, 3), {"padding_idx": 0, "max_norm": 1.0, "norm_type": 1.0, "scale_grad_by_freq": True,
                            "sparse": True}),
    ("EmbeddingBag", (10, 3), {"mode": "sum", "padding_idx": 2, "max_norm": 2.0, "scale_grad_by_freq": True}),
    ("Upsample", (), {"size": (4, 5), "mode": "bilinear"}),
    ("PixelShuffle", (2,), {}),
    ("CosineSimilarity", (), {}),
]


@pytest.mark.parametrize("name,args,kwargs", LAYER_REPRS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(LAYER_REPRS)])
def test_layer_repr_matches_torch(name, args, kwargs):
    assert repr(getattr(nn, name)(*args, **kwargs)) == repr(getattr(torch.nn, name)(*args, **kwargs))


def _layer_classes():
    """Every onnxkit.nn layer class that torch.nn has too."""
    return sorted(n for n, v in vars(nn).items() if isinstance(v, type) and issubclass(v, nn.Module)
                  and n != "Module" and isinstance(getattr(torch.nn, n, None), type))


def _params(fn):
    """(name, kind, default) of fn's parameters after self; None for torch's catch-all (*args, **kwargs)."""
    ps = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in ps):
        return None
    return [(p.name, p.kind, p.default.__name__ if callable(p.default) else p.default) for p in ps]  # F.relu: by name


@pytest.mark.parametrize("name", _layer_classes())
def test_layer_signatures_match_torch(name):
    """Constructor and forward arguments: names, kinds (keyword-only) and defaults, as in torch."""
    for method in ("__init__", "forward"):
        want = _params(getattr(getattr(torch.nn, name), method))
        if want is not None:
            assert _params(getattr(getattr(nn, name), method)) == want, method


def test_lazylinear_reset_parameters_before_materializing():
    m = nn.LazyLinear(3)
    m.reset_parameters()  # nothing to initialize yet, as in torch
    assert m.weight is None and m(ok.randn(2, 4)).shape == (2, 3)


# ----- containers --------------------------------------------------------------------------------
def _seq(lib, n=4):
    nn_ = LIBS[lib][0]
    return nn_.Sequential(*[nn_.Linear(i + 1, i + 1) for i in range(n)])


def _layout(m):
    """(key, in_features) of each child: identifies modules across torch and onnxkit."""
    return [(k, getattr(v, "in_features", None)) for k, v in m._modules.items()]


def _lin(lib, n):
    return LIBS[lib][0].Linear(n, n)


SEQUENTIAL_OPS = {
    "index": lambda s, lib: [s[0].in_features, s[-1].in_features, s[-4].in_features],
    "slice": lambda s, lib: (type(s[1:3]).__name__, _layout(s[1:3]), _layout(s[::-2])),
    "len-iter": lambda s, lib: (len(s), [m.in_features for m in s]),
    "append": lambda s, lib: _layout(s.append(_lin(lib, 9))),
    "insert": lambda s, lib: _layout(s.insert(1, _lin(lib, 9))),
    "insert-negative": lambda s, lib: _layout(s.insert(-1, _lin(lib, 9))),
    "insert-end": lambda s, lib: _layout(s.insert(4, _lin(lib, 9))),
    "extend": lambda s, lib: _layout(s.extend(_seq(lib, 2))),
    "del": lambda s, lib: (s.__delitem__(1), _layout(s))[1],
    "del-negative": lambda s, lib: (s.__delitem__(-1), _layout(s))[1],
    "del-slice": lambda s, lib: (s.__delitem__(slice(0, 3, 2)), _layout(s))[1],
    "setitem": lambda s, lib: (s.__setitem__(-2, _lin(lib, 9)), _layout(s))[1],
    "pop": lambda s, lib: (s.pop(1).in_features, _layout(s)),
    "add": lambda s, lib: _layout(s + _seq(lib, 2)),
    "iadd": lambda s, lib: (s.__iadd__(_seq(lib, 1)), _layout(s))[1],
    "mul": lambda s, lib: _layout(s[:2] * 2),
    "ordereddict-slice": lambda s, lib: _layout(LIBS[lib][0].Sequential(collections.OrderedDict(
        [("a", _lin(lib, 1)), ("b", _lin(lib, 2)), ("c", _lin(lib, 3))]))[1:]),
    "ordereddict-del": lambda s, lib: _layout((lambda q: (q.__delitem__(0), q)[1])(LIBS[lib][0].Sequential(
        collections.OrderedDict([("a", _lin(lib, 1)), ("b", _lin(lib, 2))])))),
    "index-error": lambda s, lib: _raises(lambda: s[4], IndexError),
    "insert-error": lambda s, lib: _raises(lambda: s.insert(6, _lin(lib, 1)), IndexError),
}


def _raises(fn, exc):
    with pytest.raises(exc):
        fn()
    return exc.__name__


@pytest.mark.parametrize("op", SEQUENTIAL_OPS)
def test_sequential_ops_match_torch(op):
    fn = SEQUENTIAL_OPS[op]
    assert fn(_seq("ok"), "ok") == fn(_seq("torch"), "torch")


def _mlist(lib, n=4):
    return LIBS[lib][0].ModuleList([_lin(lib, i + 1) for i in range(n)])


MODULELIST_OPS = {
    "index": lambda s, lib: [s[0].in_features, s[-1].in_features],
    "slice": lambda s, lib: (type(s[1:]).__name__, _layout(s[1:]), _layout(s[::2])),
    "append-extend": lambda s, lib: _layout(s.append(_lin(lib, 8)).extend([_lin(lib, 9)])),
    "iadd-add": lambda s, lib: (_layout(s + [_lin(lib, 7)]), (s.__iadd__([_lin(lib, 9)]), _layout(s))[1]),
    "insert": lambda s, lib: (s.insert(0, _lin(lib, 9)), _layout(s))[1],
    "setitem-negative": lambda s, lib: (s.__setitem__(-1, _lin(lib, 9)), _layout(s))[1],
    "del": lambda s, lib: (s.__delitem__(1), _layout(s))[1],
    "del-slice": lambda s, lib: (s.__delitem__(slice(1, None)), _layout(s))[1],
    "pop": lambda s, lib: (s.pop(-1).in_features, _layout(s)),
    "params": lambda s, lib: names(s.named_parameters()),
    "index-error": lambda s, lib: _raises(lambda: s[-5], IndexError),
    "extend-error": lambda s, lib: _raises(lambda: s.extend(3), TypeError),
}


@pytest.mark.parametrize("op", MODULELIST_OPS)
def test_modulelist_ops_match_torch(op):
    fn = MODULELIST_OPS[op]
    assert fn(_mlist("ok"), "ok") == fn(_mlist("torch"), "torch")


def _mdict(lib):
    return LIBS[lib][0].ModuleDict({"z": _lin(lib, 1), "a": _lin(lib, 2)})


MODULEDICT_OPS = {
    "order": lambda d, lib: list(d),
    "items": lambda d, lib: [(k, v.in_features) for k, v in d.items()],
    "setitem-del": lambda d, lib: (d.__setitem__("m", _lin(lib, 3)), d.__delitem__("z"), _layout(d))[2],
    "update-pairs": lambda d, lib: (d.update([("q", _lin(lib, 4)), ("a", _lin(lib, 5))]), _layout(d))[1],
    "pop-contains-len": lambda d, lib: (d.pop("z").in_features, "z" in d, "a" in d, len(d)),
    "clear": lambda d, lib: (d.clear(), len(d))[1],
    "update-error": lambda d, lib: _raises(lambda: d.update([("a", _lin(lib, 1), 3)]), ValueError),
}


@pytest.mark.parametrize("op", MODULEDICT_OPS)
def test_moduledict_ops_match_torch(op):
    fn = MODULEDICT_OPS[op]
    assert fn(_mdict("ok"), "ok") == fn(_mdict("torch"), "torch")


def _plist(lib):
    nn_, T = LIBS[lib]
    return nn_.ParameterList([nn_.Parameter(T(np.zeros((i + 1,), np.float32))) for i in range(3)])


def _sizes(ps):
    return [tuple(p.shape) if hasattr(p, "shape") else p for p in ps]


PARAMETERLIST_OPS = {
    "index-iter": lambda p, lib: (tuple(p[-1].shape), _sizes(p), len(p)),
    "slice": lambda p, lib: (type(p[1:]).__name__, _sizes(p[::2])),
    "append-tensor": lambda p, lib: (p.append(LIBS[lib][1](np.ones(5, np.float32))),
                                     type(p[3]).__name__, names(p.named_parameters()))[1:],
    "extend-iadd": lambda p, lib: (p.extend([LIBS[lib][0].Parameter(LIBS[lib][1](np.ones(6, np.float32)))]),
                                   p.__iadd__([LIBS[lib][1](np.ones(7, np.float32))]), _sizes(p))[2],
    "setitem": lambda p, lib: (p.__setitem__(0, LIBS[lib][1](np.ones(9, np.float32))), _sizes(p))[1],
    "object": lambda p, lib: (p.append("text"), p[3], names(p.named_parameters()))[1:],
    "state_dict": lambda p, lib: list(p.state_dict()),
    "call-error": lambda p, lib: _raises(lambda: p(1), RuntimeError),
}


@pytest.mark.parametrize("op", PARAMETERLIST_OPS)
def test_parameterlist_ops_match_torch(op):
    fn = PARAMETERLIST_OPS[op]
    assert fn(_plist("ok"), "ok") == fn(_plist("torch"), "torch")


def _pdict(lib, kind=dict):
    nn_, T = LIBS[lib]
    return nn_.ParameterDict(kind([("z", nn_.Parameter(T(np.zeros(1, np.float32)))),
                                   ("a", nn_.Parameter(T(np.zeros(2, np.float32))))]))


PARAMETERDICT_OPS = {
    "dict-sorted": lambda d, lib: list(d),
    "ordereddict-kept": lambda d, lib: list(_pdict(lib, collections.OrderedDict)),
    "pairs-kept": lambda d, lib: list(_pdict(lib, list)),
    "items": lambda d, lib: [(k, tuple(v.shape)) for k, v in d.items()],
    "set-tensor": lambda d, lib: (d.__setitem__("m", LIBS[lib][1](np.ones(3, np.float32))),
                                  type(d["m"]).__name__, names(d.named_parameters()))[1:],
    "del-pop": lambda d, lib: (d.__delitem__("z"), tuple(d.pop("a").shape), len(d), list(d.state_dict()))[1:],
    "get-setdefault": lambda d, lib: (d.get("q"), tuple(d.setdefault("a").shape), "a" in d, list(reversed(d))),
    "popitem-copy": lambda d, lib: (d.popitem()[0], list(d.copy()), len(d)),
    "or": lambda d, lib: list(d | _pdict(lib, lambda kv: collections.OrderedDict([("b", kv[0][1])]))),
    "key-error": lambda d, lib: _raises(lambda: d.__setitem__(3, None), TypeError),
}


@pytest.mark.parametrize("op", PARAMETERDICT_OPS)
def test_parameterdict_ops_match_torch(op):
    fn = PARAMETERDICT_OPS[op]
    assert fn(_pdict("ok"), "ok") == fn(_pdict("torch"), "torch")


# ----- the seed's container examples, as written -------------------------------------------------
def seed_models(lib):
    """The seed's examples (and torch's docs for ModuleDict/ParameterDict) with `nn` = the library."""
    nn_, T = LIBS[lib]
    F = nn_.functional
    randn = (lambda *s: torch.randn(*s)) if lib == "torch" else (lambda *s: ok.randn(*s))
    OrderedDict = collections.OrderedDict

    class Model(nn_.Module):
        def __init__(self):
            super(Model, self).__init__()
            self.conv1 = nn_.Conv2d(1, 20, 5)
            self.conv2 = nn_.Conv2d(20, 20, 5)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            return F.relu(self.conv2(x))

    class MyModuleList(nn_.Module):
        def __init__(self):
            super(MyModuleList, self).__init__()
            self.linears = nn_.ModuleList([nn_.Linear(10, 10) for i in range(10)])

        def forward(self, x):
            # ModuleList can act as an iterable, or be indexed using ints
            for i, l in enumerate(self.linears):
                x = self.linears[i // 2](x) + l(x)
            return x

    class MyParameterList(nn_.Module):
        def __init__(self):
            super(MyParameterList, self).__init__()
            self.params = nn_.ParameterList([nn_.Parameter(randn(10, 10)) for i in range(10)])

        def forward(self, x):
            # ParameterList can act as an iterable, or be indexed using ints
            for i, p in enumerate(self.params):
                x = self.params[i // 2].mm(x) + p.mm(x)
            return x

    class MyModuleDict(nn_.Module):
        def __init__(self):
            super(MyModuleDict, self).__init__()
            self.choices = nn_.ModuleDict({"conv": nn_.Conv2d(10, 10, 3), "pool": nn_.MaxPool2d(3)})
            self.activations = nn_.ModuleDict([["lrelu", nn_.LeakyReLU()], ["prelu", nn_.PReLU()]])

        def forward(self, x, choice, act):
            x = self.choices[choice](x)
            x = self.activations[act](x)
            return x

    class MyParameterDict(nn_.Module):
        def __init__(self):
            super(MyParameterDict, self).__init__()
            self.params = nn_.ParameterDict({"left": nn_.Parameter(randn(5, 10)), "right": nn_.Parameter(randn(5, 10))})

        def forward(self, x, choice):
            x = self.params[choice].mm(x)
            return x

    return {
        "Module": (Model(), lambda m, x: m(x), (1, 1, 12, 12)),
        "Sequential": (nn_.Sequential(nn_.Conv2d(1, 20, 5), nn_.ReLU(), nn_.Conv2d(20, 64, 5), nn_.ReLU()),
                       lambda m, x: m(x), (1, 1, 12, 12)),
        "Sequential-OrderedDict": (nn_.Sequential(OrderedDict([
            ("conv1", nn_.Conv2d(1, 20, 5)), ("relu1", nn_.ReLU()),
            ("conv2", nn_.Conv2d(20, 64, 5)), ("relu2", nn_.ReLU())])), lambda m, x: m(x), (1, 1, 12, 12)),
        "ModuleList": (MyModuleList(), lambda m, x: m(x), (3, 10)),
        "ParameterList": (MyParameterList(), lambda m, x: m(x), (10, 3)),
        "ModuleDict-conv": (MyModuleDict(), lambda m, x: m(x, "conv", "prelu"), (1, 10, 5, 5)),
        "ModuleDict-pool": (MyModuleDict(), lambda m, x: m(x, "pool", "lrelu"), (1, 10, 6, 6)),
        "ParameterDict": (MyParameterDict(), lambda m, x: m(x, "right"), (10, 2)),
    }


@pytest.mark.parametrize("name", list(seed_models("torch")))
def test_seed_container_examples(name):
    torch.manual_seed(0)
    tm, call, shape = seed_models("torch")[name]
    om = seed_models("ok")[name][0]
    assert list(om.state_dict()) == list(tm.state_dict())
    om.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 0.1
    with torch.no_grad():
        want = call(tm, torch.tensor(x)).numpy()
    np.testing.assert_allclose(call(om, ok.tensor(x)).numpy(), want, rtol=1e-4, atol=1e-5)
    assert repr(om) == _torch_repr(tm)


# ----- module paths: node names and error messages ------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.features(x) + 1)


NODE_NAMES = [  # (model factory, prefixes the op nodes' names must start with, in graph order)
    ("sequential", lambda: nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), ["0/Gemm", "1/Gemm"]),
    ("nested", lambda: nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))),
     ["0/Gemm", "1.0/Gemm", "1.1/Gemm"]),
    ("custom", Block, ["features.0/Gemm", "features.1/Relu", "features.2/Gemm", "Add", "head/Gemm"]),
]


@pytest.mark.parametrize("case", NODE_NAMES, ids=[c[0] for c in NODE_NAMES])
def test_node_names_carry_module_path(case):
    _, make, want = case
    model = ok.export(make(), [ok.Input("x", ("N", 4))])
    got = [n.name for n in model.graph.node]
    assert len(got) == len(want) and all(g.startswith(w) for g, w in zip(got, want)), got


def test_node_names_after_calling_a_child_alone():
    m = Block()
    ok.export(m.features, [ok.Input("x", ("N", 4))])          # the child as the root: no prefix
    model = ok.export(m, [ok.Input("x", ("N", 4))])           # paths recomputed for the whole model
    assert [n.name for n in model.graph.node][0] == "features.0/Gemm"


class Inner(nn.Module):
    def forward(self, x):
        raise nn.ShapeError(f"expected 16 input channels, got {x.shape[1]}")


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.pair = nn.Bilinear(3, 4, 2)

    def forward(self, a, b):
        return self.pair(a, b)


SHAPE_ERRORS = [  # (call that fails, message)
    ("sequential", lambda: nn.Sequential(nn.Linear(4, 3), nn.Linear(4, 2))(ok.randn(2, 4)),
     "1 (Linear): expected input with last dim 4 (in_features), got shape (2, 3)"),
    ("nested", lambda: nn.Sequential(collections.OrderedDict(
        [("features", nn.Sequential(nn.Linear(4, 4), nn.Identity(), nn.Linear(4, 4), Inner()))]))(ok.randn(2, 4)),
     "features.3 (Inner): expected 16 input channels, got 4"),
    ("root", lambda: nn.Linear(5, 2)(ok.randn(2, 4)),
     "Linear: expected input with last dim 5 (in_features), got shape (2, 4)"),
    ("custom", lambda: Block()(ok.randn(2, 3)),
     "features.0 (Linear): expected input with last dim 4 (in_features), got shape (2, 3)"),
    ("bilinear", lambda: Pair()(ok.randn(2, 3), ok.randn(2, 5)),
     "pair (Bilinear): expected input2 with last dim 4, got shape (2, 5)"),
    ("bilinear-batch", lambda: Pair()(ok.randn(2, 3), ok.randn(3, 4)),
     "pair (Bilinear): input1 and input2 must have the same batch dims, got shapes (2, 3) and (3, 4)"),
    ("unflatten", lambda: nn.Sequential(nn.Unflatten(1, (2, 4)))(ok.randn(2, 6)),
     "0 (Unflatten): unflattened_size (2, 4) does not fit dim 1 of size 6 (input shape (2, 6))"),
    ("lazylinear", lambda: nn.Sequential(nn.LazyLinear(3))(ok.Input("x", ("N", "F"))),
     "0 (LazyLinear): LazyLinear needs an input whose last dim is known, got shape (N, F)"),
]


@pytest.mark.parametrize("case", SHAPE_ERRORS, ids=[c[0] for c in SHAPE_ERRORS])
def test_shape_errors_name_the_module_path(case):
    _, call, msg = case
    with pytest.raises(nn.ShapeError) as e:
        call()
    assert str(e.value) == msg


CTOR_ERRORS = [
    ("unflatten-size-type", lambda: nn.Unflatten(1, 4), TypeError, "unflattened_size must be a tuple of ints"),
    ("unflatten-elem-type", lambda: nn.Unflatten(1, (2, 2.0)), TypeError, "found element of type float at pos 1"),
    ("unflatten-named", lambda: nn.Unflatten("features", (("a", 2),)), TypeError, "dim must be an int"),
]


@pytest.mark.parametrize("case", CTOR_ERRORS, ids=[c[0] for c in CTOR_ERRORS])
def test_constructor_errors(case):
    _, make, exc, msg = case
    with pytest.raises(exc, match=re.escape(msg)):
        make()


# ----- LazyLinear ------------------------------------------------------------------------------------
def test_lazylinear_materializes_on_first_call():
    m = nn.Sequential(nn.LazyLinear(3), nn.Linear(3, 2))
    assert repr(m[0]) == repr(torch.nn.LazyLinear(3)) == "LazyLinear(in_features=0, out_features=3, bias=True)"
    assert names(m.named_parameters()) == ["1.weight", "1.bias"]
    m.eval()
    y = m(ok.randn(4, 5))
    assert y.shape == (4, 2) and type(m[0]) is nn.Linear and m[0].in_features == 5 and not m[0].training
    assert names(m.named_parameters()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    bound = 1 / np.sqrt(5)
    assert np.abs(m[0].weight.numpy()).max() <= bound and np.abs(m[0].bias.numpy()).max() <= bound


def test_lazylinear_loads_torch_state_dict():
    tm = torch.nn.LazyLinear(3, bias=False)
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    want = tm(torch.tensor(x)).detach().numpy()
    om = nn.LazyLinear(3, bias=False)
    with pytest.raises(RuntimeError, match='Missing key.*"weight"'):
        nn.LazyLinear(3, bias=False).load_state_dict({})
    om.load_state_dict(tm.state_dict())
    assert type(om) is nn.Linear and om.in_features == 6 and om.bias is None
    np.testing.assert_allclose(om(ok.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)


# ----- parity rows: Bilinear, Unflatten (Identity/Linear/Flatten rows are in test_layers_core) ------
ROWS = [
    Row("Bilinear", "Bilinear", (4, 5, 3), shapes=[(3, 4), (3, 5)]),
    Row("Bilinear-nobias", "Bilinear", (2, 3, 4), {"bias": False}, shapes=[(2, 2), (2, 3)]),
    Row("Bilinear-3d", "Bilinear", (3, 2, 2), shapes=[(2, 4, 3), (2, 4, 2)]),
    Row("Unflatten", "Unflatten", (1, (2, 5)), shapes=[(2, 10)]),
    Row("Unflatten-list-neg1", "Unflatten", (-1, [2, -1]), shapes=[(2, 3, 8)]),
    Row("Unflatten-dim0", "Unflatten", (0, (1, -1)), shapes=[(3, 4)], dynamic_batch=False),
]


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_parity(row):
    check_row(row)
