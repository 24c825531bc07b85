"""Parity rows for the core layers (issue: Module system, linear/conv/pooling): forward, gradients and export
against torch for every constructor argument of the linear, convolution and pooling layers."""
import numpy as np
import pytest
import torch

from onnxkit import nn
from parity import Row, check_row, ids


def positive(*shape):
    """Inputs in [0.1, 2) for layers whose torch formula needs them (odd-power LPPool)."""
    return lambda rng, batch: [rng.uniform(0.1, 2.0, (batch,) + shape).astype(np.float32)]


def pooled(n, shape, kernel_size, stride=None, padding=0):
    """(values, torch's indices) of a max pool, as inputs of MaxUnpool rows."""
    pool = getattr(torch.nn.functional, f"max_pool{n}d")

    def make(rng, batch):
        x = torch.tensor(rng.standard_normal((batch,) + shape).astype(np.float32))
        y, idx = pool(x, kernel_size, stride, padding, return_indices=True)
        return [y.numpy(), idx.numpy()]
    return make


LINEAR_ROWS = [
    Row("Linear", "Linear", (5, 3), shapes=[(4, 5)]),
    Row("Linear-nobias", "Linear", (5, 3), {"bias": False}, shapes=[(4, 5)]),
    Row("Linear-3d", "Linear", (5, 3), shapes=[(2, 7, 5)]),
    Row("Identity", "Identity", shapes=[(2, 3)], grad=True),
    Row("Flatten", "Flatten", shapes=[(2, 3, 4, 5)]),
]

CONV_ROWS = [
    Row("Conv1d", "Conv1d", (3, 4, 3), shapes=[(2, 3, 10)]),
    Row("Conv1d-stride2-pad1-dil2", "Conv1d", (3, 4, 3), {"stride": 2, "padding": 1, "dilation": 2},
        shapes=[(2, 3, 11)]),
    Row("Conv1d-groups3-nobias", "Conv1d", (6, 9, 3), {"groups": 3, "bias": False}, shapes=[(2, 6, 8)]),
    Row("Conv1d-same-even", "Conv1d", (3, 4, 4), {"padding": "same"}, shapes=[(2, 3, 9)]),
    Row("Conv1d-valid", "Conv1d", (3, 4, 3), {"padding": "valid"}, shapes=[(2, 3, 9)]),
    Row("Conv1d-reflect", "Conv1d", (3, 4, 3), {"padding": 2, "padding_mode": "reflect"}, shapes=[(2, 3, 8)]),
    Row("Conv1d-replicate", "Conv1d", (3, 4, 3), {"padding": 1, "padding_mode": "replicate"}, shapes=[(2, 3, 8)]),
    Row("Conv1d-circular", "Conv1d", (3, 4, 3), {"padding": 2, "padding_mode": "circular", "stride": 2},
        shapes=[(2, 3, 8)]),
    Row("Conv2d", "Conv2d", (3, 8, 3), shapes=[(2, 3, 7, 6)]),
    Row("Conv2d-stride-pad-tuples", "Conv2d", (3, 5, (3, 2)), {"stride": (2, 1), "padding": (1, 2)},
        shapes=[(2, 3, 7, 6)]),
    Row("Conv2d-dilation2", "Conv2d", (3, 4, 3), {"dilation": 2, "padding": 2}, shapes=[(2, 3, 8, 7)]),
    Row("Conv2d-dilation-tuple", "Conv2d", (3, 4, 3), {"dilation": (1, 2), "stride": (2, 1)}, shapes=[(2, 3, 8, 7)]),
    Row("Conv2d-groups2", "Conv2d", (4, 6, 3), {"groups": 2}, shapes=[(2, 4, 6, 6)]),
    Row("Conv2d-depthwise", "Conv2d", (4, 8, 3), {"groups": 4, "padding": 1}, shapes=[(2, 4, 5, 5)]),
    Row("Conv2d-nobias", "Conv2d", (3, 4, 2), {"bias": False}, shapes=[(2, 3, 5, 5)]),
    Row("Conv2d-same-dil2", "Conv2d", (3, 4, 3), {"padding": "same", "dilation": 2}, shapes=[(2, 3, 7, 6)]),
    Row("Conv2d-same-even", "Conv2d", (3, 4, (2, 4)), {"padding": "same"}, shapes=[(2, 3, 6, 7)]),
    Row("Conv2d-valid", "Conv2d", (3, 4, 3), {"padding": "valid", "stride": 2}, shapes=[(2, 3, 7, 7)]),
    Row("Conv2d-reflect", "Conv2d", (3, 4, 3), {"padding": 1, "padding_mode": "reflect"}, shapes=[(2, 3, 6, 5)]),
    Row("Conv2d-replicate", "Conv2d", (3, 4, 3), {"padding": (1, 2), "padding_mode": "replicate"},
        shapes=[(2, 3, 6, 5)]),
    Row("Conv2d-circular", "Conv2d", (3, 4, 3), {"padding": 2, "padding_mode": "circular", "groups": 1},
        shapes=[(2, 3, 6, 5)]),
    Row("Conv2d-reflect-same", "Conv2d", (3, 4, (2, 3)), {"padding": "same", "padding_mode": "reflect"},
        shapes=[(2, 3, 6, 5)]),
    Row("Conv2d-circular-groups", "Conv2d", (4, 4, 3), {"padding": 1, "padding_mode": "circular", "groups": 2,
                                                      "stride": 2}, shapes=[(2, 4, 6, 5)]),
    Row("Conv3d", "Conv3d", (2, 3, 3), shapes=[(2, 2, 5, 5, 4)]),
    Row("Conv3d-stride2-pad1-groups2", "Conv3d", (4, 4, 3), {"stride": 2, "padding": 1, "groups": 2},
        shapes=[(2, 4, 5, 6, 5)]),
    Row("Conv3d-same-dil", "Conv3d", (2, 3, 3), {"padding": "same", "dilation": (1, 2, 1)}, shapes=[(2, 2, 5, 6, 4)]),
    Row("Conv3d-circular", "Conv3d", (2, 3, 2), {"padding": 1, "padding_mode": "circular"}, shapes=[(2, 2, 4, 4, 3)]),
    Row("Conv3d-replicate-nobias", "Conv3d", (2, 3, (1, 2, 3)), {"padding": (0, 1, 1), "padding_mode": "replicate",
                                                               "bias": False}, shapes=[(2, 2, 3, 4, 5)]),
    Row("Conv3d-reflect-valid", "Conv3d", (2, 3, 2), {"padding": "valid", "padding_mode": "reflect"},
        shapes=[(2, 2, 3, 4, 3)]),
    Row("ConvTranspose1d", "ConvTranspose1d", (3, 4, 3), shapes=[(2, 3, 6)]),
    Row("ConvTranspose1d-stride2-pad1-outpad1", "ConvTranspose1d", (3, 4, 3),
        {"stride": 2, "padding": 1, "output_padding": 1}, shapes=[(2, 3, 6)]),
    Row("ConvTranspose1d-groups2-dil2", "ConvTranspose1d", (4, 6, 3), {"groups": 2, "dilation": 2},
        shapes=[(2, 4, 5)]),
    Row("ConvTranspose2d", "ConvTranspose2d", (3, 4, 3), shapes=[(2, 3, 4, 5)]),
    Row("ConvTranspose2d-stride2-outpad1", "ConvTranspose2d", (3, 4, 3), {"stride": 2, "output_padding": 1},
        shapes=[(2, 3, 4, 4)]),
    Row("ConvTranspose2d-tuples", "ConvTranspose2d", (3, 2, (3, 2)),
        {"stride": (2, 3), "padding": (1, 0), "output_padding": (1, 2)}, shapes=[(2, 3, 4, 3)]),
    Row("ConvTranspose2d-groups2-nobias", "ConvTranspose2d", (4, 6, 3), {"groups": 2, "bias": False, "stride": 2},
        shapes=[(2, 4, 3, 3)]),
    Row("ConvTranspose2d-dil2-stride2-outpad1", "ConvTranspose2d", (3, 4, 3),
        {"dilation": 2, "stride": 2, "output_padding": 1, "padding": 2}, shapes=[(2, 3, 4, 4)]),
    Row("ConvTranspose2d-outpad-from-dilation", "ConvTranspose2d", (3, 4, 2),
        {"dilation": 3, "output_padding": 2}, shapes=[(2, 3, 3, 4)]),
    Row("ConvTranspose3d", "ConvTranspose3d", (2, 3, 2), shapes=[(2, 2, 3, 3, 2)]),
    Row("ConvTranspose3d-stride2-pad1-outpad1-groups2", "ConvTranspose3d", (4, 4, 3),
        {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, shapes=[(2, 4, 3, 2, 3)]),
]

POOL_ROWS = [
    Row("MaxPool1d", "MaxPool1d", (3,), shapes=[(2, 3, 10)]),
    Row("MaxPool1d-stride2-pad1-ceil", "MaxPool1d", (3, 2, 1), {"ceil_mode": True}, shapes=[(2, 3, 10)]),
    Row("MaxPool1d-dil2-indices", "MaxPool1d", (3,), {"dilation": 2, "stride": 1, "return_indices": True},
        shapes=[(2, 3, 9)], output_index=1),
    Row("MaxPool2d", "MaxPool2d", (2,), shapes=[(2, 3, 6, 6)]),
    Row("MaxPool2d-k3-s2-p1", "MaxPool2d", (3, 2, 1), shapes=[(2, 3, 7, 6)]),
    Row("MaxPool2d-ceil", "MaxPool2d", (2,), {"ceil_mode": True}, shapes=[(2, 3, 7, 5)]),
    Row("MaxPool2d-ceil-pad-drops-window", "MaxPool2d", (2, 2, 1), {"ceil_mode": True}, shapes=[(2, 3, 5, 6)]),
    Row("MaxPool2d-dil2-pad1", "MaxPool2d", (3,), {"stride": 1, "padding": 1, "dilation": 2}, shapes=[(2, 3, 7, 7)]),
    Row("MaxPool2d-indices-values", "MaxPool2d", (2,), {"return_indices": True}, shapes=[(2, 3, 6, 4)],
        output_index=0),
    Row("MaxPool2d-indices", "MaxPool2d", (2,), {"return_indices": True}, shapes=[(2, 3, 6, 4)], output_index=1),
    Row("MaxPool2d-indices-ceil-pad", "MaxPool2d", (3, 2, 1), {"return_indices": True, "ceil_mode": True},
        shapes=[(2, 3, 6, 7)], output_index=1),
    Row("MaxPool2d-ceil-dil-beyond-kernel", "MaxPool2d", (2, 4), {"dilation": 2, "ceil_mode": True},
        shapes=[(2, 3, 4, 5)]),  # ceil's extra end padding exceeds the kernel: part of it is an explicit Pad
    Row("MaxPool2d-ceil-dil-beyond-kernel-indices", "MaxPool2d", (2, 4), {"dilation": 2, "ceil_mode": True,
                                                                          "return_indices": True},
        shapes=[(2, 3, 4, 5)], output_index=1),
    Row("MaxPool2d-tuples", "MaxPool2d", ((2, 3), (1, 2), (1, 1)), shapes=[(2, 3, 5, 7)]),
    Row("MaxPool3d", "MaxPool3d", (2,), shapes=[(2, 2, 4, 4, 4)]),
    Row("MaxPool3d-k3-s2-p1-ceil-dil", "MaxPool3d", (3, 2, 1), {"ceil_mode": True, "dilation": (1, 1, 2)},
        shapes=[(2, 2, 5, 6, 7)]),
    Row("MaxPool3d-indices", "MaxPool3d", (2,), {"return_indices": True}, shapes=[(2, 2, 4, 5, 4)], output_index=1),
    Row("MaxUnpool1d", "MaxUnpool1d", (2,), make_inputs=pooled(1, (3, 8), 2)),
    Row("MaxUnpool1d-k3-s2-p1", "MaxUnpool1d", (3, 2, 1), make_inputs=pooled(1, (3, 9), 3, 2, 1)),
    Row("MaxUnpool2d", "MaxUnpool2d", (2,), make_inputs=pooled(2, (3, 6, 4), 2)),
    Row("MaxUnpool2d-k3-s2-p1", "MaxUnpool2d", (3, 2, 1), make_inputs=pooled(2, (2, 7, 7), 3, 2, 1)),
    Row("MaxUnpool2d-tuples", "MaxUnpool2d", ((2, 3), (2, 1)), make_inputs=pooled(2, (2, 6, 5), (2, 3), (2, 1))),
    Row("MaxUnpool3d", "MaxUnpool3d", (2,), make_inputs=pooled(3, (2, 4, 4, 6), 2)),
    Row("AvgPool1d", "AvgPool1d", (3,), shapes=[(2, 3, 10)]),
    Row("AvgPool1d-s2-p1-nocountpad", "AvgPool1d", (3, 2, 1), {"count_include_pad": False}, shapes=[(2, 3, 10)]),
    Row("AvgPool1d-ceil", "AvgPool1d", (3, 2, 1), {"ceil_mode": True}, shapes=[(2, 3, 10)]),
    Row("AvgPool2d", "AvgPool2d", (2,), shapes=[(2, 3, 6, 6)]),
    Row("AvgPool2d-k3-s2-p1", "AvgPool2d", (3, 2, 1), shapes=[(2, 3, 7, 6)]),
    Row("AvgPool2d-nocountpad", "AvgPool2d", (3, 1, 1), {"count_include_pad": False}, shapes=[(2, 3, 5, 6)]),
    Row("AvgPool2d-ceil", "AvgPool2d", (3, 2, 1), {"ceil_mode": True}, shapes=[(2, 3, 6, 7)]),
    Row("AvgPool2d-ceil-nocountpad", "AvgPool2d", (3, 2, 1), {"ceil_mode": True, "count_include_pad": False},
        shapes=[(2, 3, 6, 7)]),
    Row("AvgPool2d-divisor", "AvgPool2d", (3, 2, 1), {"divisor_override": 3}, shapes=[(2, 3, 7, 6)]),
    Row("AvgPool2d-divisor-ceil", "AvgPool2d", (2, 2, 1), {"divisor_override": 5, "ceil_mode": True,
                                                            "count_include_pad": False}, shapes=[(2, 3, 6, 7)]),
    Row("AvgPool2d-tuples", "AvgPool2d", ((2, 3), (1, 2), (1, 1)), shapes=[(2, 3, 5, 7)]),
    Row("AvgPool3d", "AvgPool3d", (2,), shapes=[(2, 2, 4, 4, 6)]),
    Row("AvgPool3d-ceil-nocountpad", "AvgPool3d", (3, 2, 1), {"ceil_mode": True, "count_include_pad": False},
        shapes=[(2, 2, 5, 6, 4)]),
    Row("AvgPool3d-divisor", "AvgPool3d", (2, 2, 1), {"divisor_override": 5, "ceil_mode": True},
        shapes=[(2, 2, 4, 5, 3)]),
    Row("AdaptiveAvgPool1d-uneven", "AdaptiveAvgPool1d", (4,), shapes=[(2, 3, 10)]),
    Row("AdaptiveAvgPool1d-tiles", "AdaptiveAvgPool1d", (5,), shapes=[(2, 3, 10)]),
    Row("AdaptiveAvgPool2d-uneven", "AdaptiveAvgPool2d", ((3, 4),), shapes=[(2, 3, 7, 6)]),
    Row("AdaptiveAvgPool2d-1", "AdaptiveAvgPool2d", (1,), shapes=[(2, 3, 5, 6)]),
    Row("AdaptiveAvgPool2d-None", "AdaptiveAvgPool2d", ((None, 3),), shapes=[(2, 3, 5, 7)]),
    Row("AdaptiveAvgPool2d-tiles", "AdaptiveAvgPool2d", (2,), shapes=[(2, 3, 8, 6)]),
    Row("AdaptiveAvgPool2d-larger", "AdaptiveAvgPool2d", (5,), shapes=[(2, 3, 3, 4)]),
    Row("AdaptiveAvgPool3d-uneven-None", "AdaptiveAvgPool3d", ((2, 3, None),), shapes=[(2, 2, 5, 7, 3)]),
    Row("AdaptiveAvgPool3d-1", "AdaptiveAvgPool3d", (1,), shapes=[(2, 2, 3, 4, 5)]),
    Row("AdaptiveMaxPool1d-uneven", "AdaptiveMaxPool1d", (3,), shapes=[(2, 3, 10)]),
    Row("AdaptiveMaxPool1d-indices", "AdaptiveMaxPool1d", (3, True), shapes=[(2, 3, 10)], output_index=1),
    Row("AdaptiveMaxPool2d-uneven", "AdaptiveMaxPool2d", ((3, 4),), shapes=[(2, 3, 7, 6)]),
    Row("AdaptiveMaxPool2d-uneven-indices", "AdaptiveMaxPool2d", ((3, 4), True), shapes=[(2, 3, 7, 6)],
        output_index=1),
    Row("AdaptiveMaxPool2d-None-tiles", "AdaptiveMaxPool2d", ((None, 2),), shapes=[(2, 3, 5, 6)]),
    Row("AdaptiveMaxPool2d-1", "AdaptiveMaxPool2d", (1,), shapes=[(2, 3, 5, 6)]),
    Row("AdaptiveMaxPool2d-tiles-indices", "AdaptiveMaxPool2d", (2, True), shapes=[(2, 3, 8, 6)], output_index=1),
    Row("AdaptiveMaxPool3d-uneven", "AdaptiveMaxPool3d", ((2, 3, 2),), shapes=[(2, 2, 5, 6, 3)]),
    Row("AdaptiveMaxPool3d-indices", "AdaptiveMaxPool3d", ((2, None, 2), True), shapes=[(2, 2, 5, 3, 3)],
        output_index=1),
    Row("LPPool1d", "LPPool1d", (2, 3), shapes=[(2, 3, 10)]),
    Row("LPPool1d-p3-stride1", "LPPool1d", (3, 2, 1), make_inputs=positive(3, 9)),
    Row("LPPool2d", "LPPool2d", (2, 2), shapes=[(2, 3, 6, 6)]),
    Row("LPPool2d-ceil", "LPPool2d", (2, 3, 2), {"ceil_mode": True}, shapes=[(2, 3, 6, 7)]),
    Row("LPPool2d-p1.5-tuples", "LPPool2d", (1.5, (2, 3), (1, 2)), make_inputs=positive(3, 5, 7)),
    Row("LPPool3d", "LPPool3d", (2, 2), shapes=[(2, 2, 4, 4, 4)]),
    Row("LPPool3d-ceil", "LPPool3d", (2, (2, 3, 2)), {"stride": 2, "ceil_mode": True}, shapes=[(2, 2, 5, 5, 3)]),
]

ROWS = LINEAR_ROWS + CONV_ROWS + POOL_ROWS


@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_parity(row):
    check_row(row)


# ----- forward calls with keyword arguments: the layer subclassed in both libraries --------------------------
CALLS = {  # row ctor -> (base class name, forward keyword arguments)
    "ConvTranspose1dOutputSize": ("ConvTranspose1d", {"output_size": (12,)}),
    "ConvTranspose2dOutputSize": ("ConvTranspose2d", {"output_size": (9, 10)}),
    "ConvTranspose2dOutputSizeNCHW": ("ConvTranspose2d", {"output_size": (2, 4, 9, 8)}),
    "ConvTranspose3dOutputSize": ("ConvTranspose3d", {"output_size": (6, 7, 5)}),
    "MaxUnpool2dOutputSize": ("MaxUnpool2d", {"output_size": (7, 6)}),
    "MaxUnpool1dOutputSize": ("MaxUnpool1d", {"output_size": (2, 3, 10)}),
}

CALL_ROWS = [
    Row("ConvTranspose1d-output_size", "ConvTranspose1dOutputSize", (3, 4, 3), {"stride": 2}, shapes=[(2, 3, 5)]),
    Row("ConvTranspose2d-output_size", "ConvTranspose2dOutputSize", (3, 4, 3), {"stride": (2, 3), "padding": 1},
        shapes=[(2, 3, 5, 4)]),
    Row("ConvTranspose2d-output_size-NCHW", "ConvTranspose2dOutputSizeNCHW", (3, 4, 2), {"stride": 2},
        shapes=[(2, 3, 4, 4)]),
    Row("ConvTranspose3d-output_size", "ConvTranspose3dOutputSize", (2, 3, 2), {"stride": 2, "groups": 1},
        shapes=[(2, 2, 3, 3, 2)]),
    Row("MaxUnpool2d-output_size", "MaxUnpool2dOutputSize", (2,), make_inputs=pooled(2, (3, 7, 6), 2)),
    Row("MaxUnpool1d-output_size", "MaxUnpool1dOutputSize", (3, 2, 1), make_inputs=pooled(1, (3, 10), 3, 2, 1)),
]


def _call_with(base, kwargs):
    class Call(base):
        def forward(self, *args):
            return super().forward(*args, **kwargs)
    return Call


@pytest.mark.parametrize("row", CALL_ROWS, ids=ids(CALL_ROWS))
def test_parity_forward_kwargs(row, monkeypatch):
    base, kwargs = CALLS[row.ctor]
    monkeypatch.setattr(torch.nn, row.ctor, _call_with(getattr(torch.nn, base), kwargs), raising=False)
    monkeypatch.setattr(nn, row.ctor, _call_with(getattr(nn, base), kwargs), raising=False)
    check_row(row)


# ----- default initialization ----------------------------------------------------------------------------------
INIT_CASES = [  # (class name, args, kwargs): large enough layers for tight sample statistics
    ("Conv2d", (64, 128, 3), {}),
    ("Conv1d", (48, 96, 5), {"groups": 4}),
    ("ConvTranspose2d", (64, 96, 3), {"groups": 2}),
    ("Conv3d", (16, 32, 3), {}),
]


@pytest.mark.parametrize("case", INIT_CASES, ids=[c[0] for c in INIT_CASES])
def test_default_init_statistics(case):
    """torch's shapes and kaiming_uniform(a=sqrt(5)) init: weight and bias ~ U(-b, b), b = 1/sqrt(fan_in),
    fan_in = weight.shape[1] * kernel volume; sample min/max/mean/std within 5 standard errors, as torch's."""
    name, args, kwargs = case
    tm, om = getattr(torch.nn, name)(*args, **kwargs), getattr(nn, name)(*args, **kwargs)
    weight = tm.weight.detach().numpy()
    bound = 1 / np.sqrt(weight.shape[1] * np.prod(weight.shape[2:]))
    ours_sd = om.state_dict()
    assert list(ours_sd) == list(tm.state_dict())
    for key, theirs in tm.state_dict().items():
        ours = ours_sd[key]
        assert ours.shape == tuple(theirs.shape) and ours.dtype == np.float32, key
        tol = 3 * bound / np.sqrt(ours.size)
        for sample in (ours, theirs.numpy()):  # the statistics hold for torch's draw too
            assert np.abs(sample).max() <= bound and np.abs(sample).max() > 0.9 * bound, key
            assert abs(sample.std() - bound / np.sqrt(3)) < tol, (key, sample.std())
            assert abs(sample.mean()) < tol, (key, sample.mean())


# ----- functional forms: F.pad modes and negative pads, unbatched inputs -----------------------------------
FUNCTIONAL = [  # (id, call(F, *inputs) with F = torch's or onnxkit's functional module, input shapes)
    ("pad-constant-value-crop", lambda F, x: F.pad(x, (1, -2, -1, 2, 0, 1), value=0.5), [(2, 3, 4, 5)]),
    ("pad-reflect-crop-after", lambda F, x: F.pad(x, (3, -2), mode="reflect"), [(2, 3, 5)]),
    ("pad-reflect-2d", lambda F, x: F.pad(x, (2, 1, 1, 3), mode="reflect"), [(2, 3, 4, 5)]),
    ("pad-replicate-crop", lambda F, x: F.pad(x, (-1, 2, 2, -1), mode="replicate"), [(2, 3, 4, 5)]),
    ("pad-replicate-3d", lambda F, x: F.pad(x, (1, 0, 0, 2, 1, 1), mode="replicate"), [(1, 2, 3, 3, 4)]),
    ("pad-circular-crop-first", lambda F, x: F.pad(x, (-1, 2), mode="circular"), [(2, 3, 4)]),
    ("pad-circular-3d", lambda F, x: F.pad(x, (1, 1, 2, 0, 0, 1), mode="circular"), [(1, 2, 3, 3, 4)]),
    ("conv2d-unbatched", lambda F, x, w: F.conv2d(x, w, padding=1), [(3, 5, 6), (4, 3, 3, 3)]),
    ("conv_transpose1d-unbatched", lambda F, x, w: F.conv_transpose1d(x, w, stride=2), [(3, 5), (3, 2, 3)]),
    ("max_pool2d-unbatched-indices", lambda F, x: F.max_pool2d(x, 2, return_indices=True), [(3, 4, 6)]),
    ("avg_pool1d-unbatched", lambda F, x: F.avg_pool1d(x, 3, 2, 1, ceil_mode=True), [(3, 8)]),
    ("adaptive_max_pool2d-unbatched", lambda F, x: F.adaptive_max_pool2d(x, (2, 3), return_indices=True),
     [(3, 5, 7)]),
    ("adaptive_avg_pool3d-unbatched", lambda F, x: F.adaptive_avg_pool3d(x, (2, None, 3)), [(2, 5, 3, 4)]),
    ("lp_pool1d-unbatched", lambda F, x: F.lp_pool1d(x, 2, 3), [(3, 9)]),
]


@pytest.mark.parametrize("case", FUNCTIONAL, ids=[c[0] for c in FUNCTIONAL])
def test_functional_parity(case):
    """Forward (every output) and the gradient of the first output w.r.t. every input, against torch."""
    import onnxkit as ok
    import onnxkit.nn.functional as OF
    _, call, shapes = case
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    tx = [torch.tensor(a, requires_grad=True) for a in arrays]
    ox = [ok.tensor(a, requires_grad=True) for a in arrays]
    ty, oy = call(torch.nn.functional, *tx), call(OF, *ox)
    ty, oy = (ty, oy) if isinstance(ty, tuple) else ((ty,), (oy,))
    for t, o in zip(ty, oy):
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = rng.standard_normal(tuple(ty[0].shape)).astype(np.float32)
    tg = torch.autograd.grad(ty[0], tx, torch.tensor(g))
    og = ok.grad(oy[0], ox, grad_outputs=ok.tensor(g))
    for o, t in zip(og, tg):
        np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=1e-3, atol=1e-4)
