"""torch.nn.functional.grid_sample for 4-D and 5-D inputs, composed from standard ops (no GridSample node,
so gradients w.r.t. the input and the grid come from the GatherElements and elementwise rules): unnormalize
the grid, apply the padding mode to the coordinates, then gather and weight the 4 (8) neighbours
(bilinear, trilinear) or the nearest pixel."""
import numpy as np

from .. import dtypes
from ..tensor import apply, const
from .core import (abs_, add, as_tensor, cast, clamp, div, eq, floor, fmod, ge, le, logical_and, mul, round_,
                   sub, where)
from .shape import expand, reshape, unsqueeze

__all__ = ["grid_sample"]

_I64 = np.dtype(np.int64)


def _unnormalize(coord, size, align_corners):
    """[-1, 1] to pixel coordinates: corner pixel centres (align_corners) or corner pixel edges."""
    if align_corners:
        return mul(add(coord, 1.0), (size - 1) / 2.0)
    return div(sub(mul(add(coord, 1.0), float(size)), 1.0), 2.0)


def _reflect(coord, low2, high2):
    """torch's reflect_coordinates: fold coord into [low2 / 2, high2 / 2] by mirroring at its ends."""
    if low2 == high2:
        return mul(coord, 0.0)
    lo, span = low2 / 2.0, (high2 - low2) / 2.0
    c = abs_(sub(coord, lo))
    extra = fmod(c, span)
    flips = floor(div(c, span))
    even = eq(fmod(flips, 2.0), 0.0)
    return where(even, add(extra, lo), add(sub(span, extra), lo))


def _source_coordinate(coord, size, padding_mode, align_corners):
    c = _unnormalize(coord, size, align_corners)
    if padding_mode == "border":
        return clamp(c, 0.0, float(size - 1))
    if padding_mode == "reflection":
        c = _reflect(c, 0, 2 * (size - 1)) if align_corners else _reflect(c, -1, 2 * size - 1)
        return clamp(c, 0.0, float(size - 1))
    return c


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Sample input (N, C, H, W) at grid (N, Ho, Wo, 2) locations (x, y in [-1, 1]) into (N, C, Ho, Wo), or
    input (N, C, D, H, W) at grid (N, Do, Ho, Wo, 3) (x, y, z) into (N, C, Do, Ho, Wo), as
    torch.nn.functional.grid_sample (modes 'bilinear' (trilinear on 5-D) and 'nearest'; padding 'zeros',
    'border', 'reflection'; align_corners False by default)."""
    import itertools
    x, g = as_tensor(input), as_tensor(grid)
    if mode not in ("bilinear", "nearest"):
        raise NotImplementedError(f"grid_sample: mode {mode!r} is not supported (bilinear and nearest are)")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    rank = len(x._shape)
    if rank not in (4, 5) or len(g._shape) != rank or g._shape[-1] != rank - 2:
        raise ValueError(f"grid_sample: expected a 4-D input with an (N, H, W, 2) grid or a 5-D input with an "
                         f"(N, D, H, W, 3) grid, got {tuple(x._shape)} and {tuple(g._shape)}")
    if not dtypes.is_floating(x.dtype) or g.dtype != x.dtype:
        raise TypeError(f"grid_sample: expected input and grid of one floating dtype, got {x.dtype} and {g.dtype}")
    n, c = x.shape[:2]
    sizes = list(x._shape[2:])  # (D,) H, W
    if not all(isinstance(v, int) for v in sizes):
        raise ValueError("grid_sample: the input's spatial size must be static")
    out_spatial = g.shape[1:-1]
    align = bool(align_corners)
    k = len(sizes)
    # grid coordinate j runs over W, H, D: spatial dim k - 1 - j
    coords = [_source_coordinate(g[..., k - 1 - a], sizes[a], padding_mode, align) for a in range(k)]
    total = int(np.prod(sizes))
    flat = reshape(x, n, c, total)

    def pick(at_dims):
        """input at integer coordinates (one per spatial dim; zeros outside), as (N, C, *out_spatial)."""
        inside, at = None, None
        for a, (v, size) in enumerate(zip(at_dims, sizes)):
            ok_a = logical_and(ge(v, 0.0), le(v, float(size - 1)))
            inside = ok_a if inside is None else logical_and(inside, ok_a)
            clipped = clamp(v, 0.0, float(size - 1))
            at = clipped if at is None else add(mul(at, float(size)), clipped)
        at = reshape(cast(at, _I64), n, 1, -1)
        at = expand(at, n, c, at.shape[2])
        vals = apply("GatherElements", [flat, at], {"axis": 2}, types=[(x.dtype, at._shape)])
        vals = reshape(vals, n, c, *out_spatial)
        return where(unsqueeze(inside, 1), vals, const(0.0, x.dtype))
    if mode == "nearest":
        return pick([round_(v) for v in coords])
    lows = [floor(v) for v in coords]
    fracs = [sub(v, lo) for v, lo in zip(coords, lows)]
    out = None
    for corner in itertools.product((0, 1), repeat=k):
        at = [add(lo, 1.0) if bit else lo for lo, bit in zip(lows, corner)]
        weight = None
        for f, bit in zip(fracs, corner):
            w = f if bit else sub(1.0, f)
            weight = w if weight is None else mul(weight, w)
        term = mul(pick(at), unsqueeze(weight, 1))
        out = term if out is None else add(out, term)
    return out
