"""Vision ops (torch.nn.functional names): pixel_shuffle / pixel_unshuffle / channel_shuffle as
Reshape + Transpose + Reshape (gradients come from the core rules), and interpolate: ONNX Resize
with the coordinate mapping torch uses, or, for the nearest modes on static sizes, one Gather per
axis with torch's own float32 index arithmetic (Resize's float division rounds differently at
exact boundaries, e.g. 39 -> 3)."""
import math

import numpy as np

from ..dims import Dim
from ..infer import fresh_dim
from ..tensor import apply, const
from . import pool
from .core import as_tensor
from .shape import reshape, permute, index_select

__all__ = ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "interpolate", "upsample", "upsample_nearest",
           "upsample_bilinear"]


def pixel_shuffle(input, upscale_factor):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r)."""
    x, r = as_tensor(input), int(upscale_factor)
    if len(x._shape) < 3:
        raise ValueError(f"pixel_shuffle expects input with at least 3 dims (*, C, H, W), got shape {tuple(x._shape)}")
    *batch, c, h, w = x.shape
    if isinstance(c, int) and c % (r * r):
        raise ValueError(f"pixel_shuffle expects its input's 'channel' dimension ({c}) to be divisible by the square "
                         f"of upscale_factor ({r * r})")
    b = len(batch)
    y = reshape(x, *batch, c // (r * r), r, r, h, w)
    y = permute(y, *range(b), b, b + 3, b + 1, b + 4, b + 2)
    return reshape(y, *batch, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W)."""
    x, r = as_tensor(input), int(downscale_factor)
    if len(x._shape) < 3:
        raise ValueError(f"pixel_unshuffle expects input with at least 3 dims (*, C, H, W), got shape {tuple(x._shape)}")
    *batch, c, h, w = x.shape
    for name, d in (("height", h), ("width", w)):
        if isinstance(d, int) and d % r:
            raise ValueError(f"pixel_unshuffle expects {name} ({d}) to be divisible by downscale_factor ({r})")
    b = len(batch)
    y = reshape(x, *batch, c, h // r, r, w // r, r)
    y = permute(y, *range(b), b, b + 2, b + 4, b + 1, b + 3)
    return reshape(y, *batch, c * r * r, h // r, w // r)


def channel_shuffle(input, groups):
    """(N, C, *) with C = g * k: interleave the g groups of k channels."""
    x, g = as_tensor(input), int(groups)
    if len(x._shape) < 3:
        raise ValueError(f"channel_shuffle expects input with at least 3 dims (N, C, *), got shape {tuple(x._shape)}")
    n, c, *rest = x.shape
    if isinstance(c, int) and c % g:
        raise ValueError(f"Number of channels ({c}) must be divisible by groups ({g})")
    y = reshape(x, n, g, c // g, *rest)
    return reshape(permute(y, 0, 2, 1, *range(3, len(x._shape) + 1)), x.shape)


# ----- interpolate ---------------------------------------------------------------------------
_SPATIAL_DIMS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "area": (1, 2, 3), "linear": (1,),
                 "bilinear": (2,), "bicubic": (2,), "trilinear": (3,)}
_INTERPOLATING = ("linear", "bilinear", "bicubic", "trilinear")
# torch mode -> ONNX Resize attributes (coordinate mapping without align_corners)
_RESIZE = {
    "nearest": {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    "nearest-exact": {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                      "nearest_mode": "round_prefer_ceil"},
    "linear": {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
    "bilinear": {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
    "trilinear": {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
    "bicubic": {"mode": "cubic", "coordinate_transformation_mode": "half_pixel", "cubic_coeff_a": -0.75},
}


def _per_dim(v, n, what):
    vals = list(v) if isinstance(v, (list, tuple)) else [v] * n
    if len(vals) != n:
        raise ValueError(f"Input and {what} must have the same number of spatial dimensions, but got input with "
                         f"{n} spatial dimensions and {what} {v}")
    return vals


def _nearest_index(mode, n_in, n_out, scale, dtype):
    """torch's CPU source index per output position (UpSampleKernel.cpp), reproducing its rounding:
    the scale in float32 (float64 for float64 input), products formed exactly (as an FMA does),
    rounded to the scale's type, floored as float32."""
    f = np.float64 if dtype == np.float64 else np.float32
    s = np.float64(f(1.0 / scale) if scale is not None else f(n_in) / f(n_out))
    dst = np.arange(n_out, dtype=np.float64)
    if mode == "nearest":  # floor(scale * dst)
        src = s * dst
    else:  # area_pixel_compute_source_index (clamped at 0), then floor(x + 0.5)
        src = np.maximum((s * (dst + 0.5) - 0.5).astype(f), 0).astype(np.float64) + 0.5
    return np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), n_in - 1)


def _scaled_dim(n, scale):
    """floor(n * scale); a symbolic n keeps a readable name for integer scales ('2*H')."""
    if isinstance(n, int):
        return math.floor(n * scale)
    return (Dim(n) * int(scale)).name if float(scale).is_integer() else fresh_dim()


def _onnx_scale(scale, n_in):
    """float32 scale whose product with n_in floors to torch's size floor(n_in * scale) in ONNX's
    shape inference (which multiplies in double)."""
    s = np.float32(scale)
    if isinstance(n_in, int):
        want = math.floor(n_in * scale)
        while math.floor(float(s) * n_in) < want:
            s = np.nextafter(s, np.float32(np.inf))
        while math.floor(float(s) * n_in) > want:
            s = np.nextafter(s, np.float32(-np.inf))
    return float(s)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """torch.nn.functional.interpolate over the spatial dims (2..). Modes nearest, nearest-exact,
    linear, bilinear, bicubic (A = -0.75), trilinear: ONNX Resize (axes = spatial dims; scales when
    scale_factor is used as given, sizes otherwise); nearest modes on static sizes: Gather.
    area: adaptive average pooling."""
    x = as_tensor(input)
    if mode not in _SPATIAL_DIMS:
        raise ValueError(f"interpolate: unknown mode {mode!r}; expected one of {', '.join(_SPATIAL_DIMS)}")
    nsp = len(x._shape) - 2
    if nsp not in _SPATIAL_DIMS[mode]:
        want = " or ".join(f"{d + 2}D" for d in _SPATIAL_DIMS[mode])
        raise ValueError(f"interpolate: got {len(x._shape)}D input, but mode {mode!r} needs {want} input")
    if align_corners is not None and mode not in _INTERPOLATING:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported (onnxruntime's Resize antialias "
                                  "filter does not match torch's)")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size or scale_factor should be defined")
    if size is not None and recompute_scale_factor:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    in_sp = list(x._shape[2:])
    scales = None
    if size is not None:
        out_sp = [int(s) for s in _per_dim(size, nsp, "output size")]
    else:
        scales = [float(s) for s in _per_dim(scale_factor, nsp, "scale_factor")]
        out_sp = [_scaled_dim(n, s) for n, s in zip(in_sp, scales)]
        static_in = all(isinstance(n, int) for n in in_sp)
        if recompute_scale_factor and not static_in:
            raise ValueError("interpolate: recompute_scale_factor=True needs static spatial dims")
        if recompute_scale_factor or (align_corners and static_in):
            scales = None  # Resize by sizes; align_corners ignores the scale anyway
    if any(isinstance(o, int) and o < 1 for o in out_sp):
        raise ValueError(f"interpolate: input and output sizes should be greater than 0, but got input "
                         f"{tuple(in_sp)} and output {tuple(out_sp)}")
    if mode == "area":
        if not all(isinstance(o, int) for o in out_sp):
            raise ValueError("interpolate: mode='area' needs static output sizes")
        return getattr(pool, f"adaptive_avg_pool{nsp}d")(x, tuple(out_sp))
    static = all(isinstance(d, int) for d in in_sp + out_sp)
    if mode.startswith("nearest") and static:
        y = x
        for k, (n, m) in enumerate(zip(in_sp, out_sp)):
            idx = _nearest_index(mode, n, m, None if scales is None else scales[k], x.dtype)
            if m != n or np.any(idx != np.arange(n)):
                y = index_select(y, 2 + k, const(idx, np.int64))
        return y
    attrs = dict(_RESIZE[mode], axes=list(range(2, 2 + nsp)))
    if align_corners:
        attrs["coordinate_transformation_mode"] = "align_corners"
    out_shape = tuple(x._shape[:2]) + tuple(out_sp)
    if scales is not None:
        onnx_scales = [_onnx_scale(s, n) for s, n in zip(scales, in_sp)]
        inputs = [x, None, const(onnx_scales, np.float32)]
    else:
        inputs = [x, None, None, const(out_sp, np.int64)]
    return apply("Resize", inputs, attrs, types=[(x.dtype, out_shape)])


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Older name of interpolate (torch.nn.functional.upsample)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Older name: interpolate(mode='nearest')."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Older name: interpolate(mode='bilinear', align_corners=True)."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)
