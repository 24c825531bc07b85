"""Build-time errors of the convolution, pooling and padding layers and functions: one row per message.
Shape errors surface when a layer is applied and name the module path with expected vs got; bad argument
combinations fail in the constructor (or the call) with the reason."""
import numpy as np
import pytest

import onnxkit as ok
import onnxkit.nn.functional as F
from onnxkit import nn


def zeros(*shape, dtype=np.float32):
    return ok.tensor(np.zeros(shape, dtype))


def test_sequential_channel_mismatch_names_the_layer():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(16, 4, 3))
    with pytest.raises(nn.ShapeError, match=r"^1 \(Conv2d\): expected 16 input channels, got 8 \(input shape "
                                            r"\(2, 8, 6, 6\)"):
        model(zeros(2, 3, 8, 8))


# (id, layer, input shapes, substrings of the message after "1 (Layer): ")
SHAPE_ERRORS = [
    ("conv-rank", lambda: nn.Conv2d(3, 8, 3), [(3, 8)], ["expected 3-D (unbatched) or 4-D (batched) input",
                                                         "got shape (3, 8)"]),
    ("conv-channels", lambda: nn.Conv1d(4, 8, 3, groups=2), [(2, 6, 9)], ["expected 4 input channels, got 6",
                                                                           "groups=2"]),
    ("conv-padding-mode-channels", lambda: nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), [(2, 5, 6, 6)],
     ["expected 3 input channels, got 5", "(2, 5, 6, 6)"]),
    ("conv-padding-mode-rank", lambda: nn.Conv3d(3, 8, 3, padding=1, padding_mode="circular"), [(3, 6, 6)],
     ["expected 4-D (unbatched) or 5-D (batched) input", "got shape (3, 6, 6)"]),
    ("conv-kernel-too-large", lambda: nn.Conv2d(3, 8, 5), [(2, 3, 4, 9)],
     ["padded input size per channel (4, 9) is smaller than the kernel size (5, 5)"]),
    ("conv-transpose-channels", lambda: nn.ConvTranspose2d(4, 8, 3), [(2, 3, 5, 5)],
     ["expected 4 input channels, got 3"]),
    ("conv-transpose-rank", lambda: nn.ConvTranspose1d(4, 8, 3), [(2, 4, 5, 5)],
     ["expected 2-D (unbatched) or 3-D (batched) input", "got shape (2, 4, 5, 5)"]),
    ("maxpool-too-small", lambda: nn.MaxPool2d(3), [(2, 3, 2, 8)], ["Given input size: (3x2x8)",
                                                                     "Calculated output size: (3x0x2)"]),
    ("maxpool-rank", lambda: nn.MaxPool1d(2), [(2, 3, 4, 4)], ["expected 2-D (unbatched) or 3-D (batched) input"]),
    ("avgpool-too-small", lambda: nn.AvgPool3d(2), [(1, 2, 1, 4, 4)], ["Output size is too small"]),
    ("lppool-rank", lambda: nn.LPPool2d(2, 2), [(5,)], ["expected 3-D (unbatched) or 4-D (batched) input"]),
    ("adaptive-rank", lambda: nn.AdaptiveAvgPool2d(2), [(2, 3, 4, 4, 4)], ["to adaptive_avg_pool2d"]),
    ("unpool-indices-shape", lambda: nn.MaxUnpool2d(2), [(1, 2, 3, 3), (1, 2, 3, 2)],
     ["expected indices of the input's shape (1, 2, 3, 3), got (1, 2, 3, 2)"]),
]


@pytest.mark.parametrize("case", SHAPE_ERRORS, ids=[c[0] for c in SHAPE_ERRORS])
def test_shape_error_names_path_expected_and_got(case):
    _, make, shapes, parts = case
    layer = make()
    inputs = [zeros(*s) if i == 0 else zeros(*s, dtype=np.int64) for i, s in enumerate(shapes)]
    model = nn.Sequential(nn.Identity(), layer) if len(inputs) == 1 else _Second(layer)
    with pytest.raises(nn.ShapeError) as err:
        model(*inputs)
    msg = str(err.value)
    path = "1" if len(inputs) == 1 else "body.1"
    assert msg.startswith(f"{path} ({type(layer).__name__}): "), msg
    for part in parts:
        assert part in msg, msg


class _Second(nn.Module):
    """A container calling child `body.1` with several inputs (nn.Sequential passes one)."""

    def __init__(self, layer):
        super().__init__()
        self.body = nn.ModuleList([nn.Identity(), layer])

    def forward(self, *inputs):
        return self.body[1](*inputs)


# (id, call, exception, substring): constructor and call-time argument errors
ARGUMENT_ERRORS = [
    ("conv-in-groups", lambda: nn.Conv2d(4, 6, 3, groups=3), ValueError, "in_channels must be divisible by groups"),
    ("conv-out-groups", lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError, "out_channels must be divisible by groups"),
    ("conv-groups-zero", lambda: nn.Conv1d(4, 6, 3, groups=0), ValueError, "groups must be a positive integer"),
    ("conv-padding-string", lambda: nn.Conv2d(4, 6, 3, padding="full"), ValueError,
     "Invalid padding string 'full', should be one of"),
    ("conv-same-strided", lambda: nn.Conv2d(4, 6, 3, padding="same", stride=2), ValueError,
     "padding='same' is not supported for strided convolutions"),
    ("conv-padding-mode", lambda: nn.Conv2d(4, 6, 3, padding_mode="zero"), ValueError,
     "padding_mode must be one of"),
    ("conv-transpose-padding-mode", lambda: nn.ConvTranspose2d(4, 6, 3, padding_mode="reflect"), ValueError,
     'Only "zeros" padding mode is supported for ConvTranspose2d'),
    ("conv-transpose-string-padding", lambda: nn.ConvTranspose1d(4, 6, 3, padding="same"), ValueError,
     "does not support string padding"),
    ("conv-kernel-tuple-length", lambda: nn.Conv2d(4, 6, (3, 3, 3)), ValueError,
     "kernel_size must be an int or a tuple of 2 ints"),
    ("conv-transpose-output-padding", lambda: F.conv_transpose2d(zeros(1, 2, 4, 4), zeros(2, 3, 3, 3), stride=2,
                                                                 output_padding=2), ValueError,
     "output padding must be smaller than either stride or dilation"),
    ("conv-transpose-output-size-range", lambda: nn.ConvTranspose2d(2, 2, 3, stride=2)(
        zeros(1, 2, 4, 4), output_size=(20, 20)), ValueError,
     "requested an output size of (20, 20), but valid sizes range from [9, 9] to [10, 10]"),
    ("conv-transpose-output-size-length", lambda: nn.ConvTranspose2d(2, 2, 3, stride=2)(
        zeros(1, 2, 4, 4), output_size=(1, 2, 9)), ValueError, "output_size must have 2 or 4 elements (got 3)"),
    ("conv-same-strided-functional", lambda: F.conv2d(zeros(1, 2, 5, 5), zeros(3, 2, 3, 3), padding="same",
                                                      stride=2), ValueError, "not supported for strided"),
    ("maxpool-padding", lambda: nn.MaxPool2d(3, padding=2), ValueError, "pad should be at most half of kernel size"),
    ("avgpool-padding", lambda: nn.AvgPool1d(2, padding=2), ValueError, "pad should be at most half of kernel size"),
    ("maxpool-stride-zero", lambda: nn.MaxPool2d(3, stride=0), ValueError, "stride should be greater than zero"),
    ("maxpool-dilation-zero", lambda: nn.MaxPool3d(3, dilation=0), ValueError, "dilation should be greater than zero"),
    ("lppool-kernel-zero", lambda: nn.LPPool1d(2, 0), ValueError, "kernel size should be greater than zero"),
    ("avgpool-divisor-zero", lambda: nn.AvgPool2d(2, divisor_override=0)(zeros(1, 1, 4, 4)), ValueError,
     "divisor must be not zero"),
    ("unpool-output-size-range", lambda: nn.MaxUnpool2d(2)(zeros(1, 1, 2, 2), zeros(1, 1, 2, 2, dtype=np.int64),
                                                           output_size=(9, 9)), ValueError,
     'invalid output_size "(9, 9)" (dim 0 must be between 2 and 6)'),
    ("unpool-output-size-length", lambda: nn.MaxUnpool1d(2)(zeros(1, 1, 2), zeros(1, 1, 2, dtype=np.int64),
                                                            output_size=(1, 4)), ValueError,
     "output_size should be a sequence containing 1 or 3 elements"),
    ("adaptive-output-size-length", lambda: nn.AdaptiveMaxPool2d((2, 3, 4))(zeros(1, 2, 5, 5)), ValueError,
     "adaptive_max_pool2d: output_size must be 2"),
    ("adaptive-output-size-zero", lambda: F.adaptive_avg_pool1d(zeros(1, 2, 5), 0), ValueError,
     "elements of output_size must be greater than zero"),
    ("pad-odd-length", lambda: F.pad(zeros(1, 2, 3), (1,)), ValueError, "Padding length must be divisible by 2"),
    ("pad-too-long", lambda: F.pad(zeros(1, 2, 3), (1,) * 8), ValueError,
     "Padding length should be less than or equal to two times the input dimension"),
    ("pad-mode", lambda: F.pad(zeros(1, 2, 3), (1, 1), mode="symmetric"), ValueError,
     "Unrecognised padding mode 'symmetric'"),
    ("pad-reflect-too-large", lambda: F.pad(zeros(1, 2, 3), (3, 0), mode="reflect"), ValueError,
     "padding (3, 0) at dimension 2 of input (1, 2, 3)"),
    ("pad-circular-wraps-twice", lambda: F.pad(zeros(1, 2, 3), (0, 4), mode="circular"), ValueError,
     "Padding value causes wrapping around more than once"),
    ("pad-value-with-reflect", lambda: F.pad(zeros(1, 2, 3), (1, 1), mode="reflect", value=1.0), ValueError,
     'Padding mode "reflect" doesn\'t take in value argument'),
]


@pytest.mark.parametrize("case", ARGUMENT_ERRORS, ids=[c[0] for c in ARGUMENT_ERRORS])
def test_argument_error(case):
    _, call, exc, part = case
    with pytest.raises(exc) as err:
        call()
    assert part in str(err.value), str(err.value)
