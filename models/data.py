"""scikit-learn's bundled handwritten digits (1797 images, 8x8, shipped with the package, no
download), upscaled to 1x28x28 by bilinear interpolation and standardized."""
import numpy as np


def _interp_matrix(n_in, n_out):
    """(n_out, n_in) bilinear resampling matrix (pixel centers aligned, as align_corners=False)."""
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
    hi = np.clip(lo + 1, 0, n_in - 1)
    w = np.clip(pos - lo, 0.0, 1.0)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - w
    m[np.arange(n_out), hi] += w
    return m


def upscale(images, size=28):
    """(N, h, w) -> (N, size, size) bilinear."""
    r = _interp_matrix(images.shape[1], size)
    c = _interp_matrix(images.shape[2], size)
    return np.einsum("ih,nhw,jw->nij", r, images, c)


def load_digits(size=28, test_size=360, seed=0):
    """(x_train, y_train, x_test, y_test): float32 (N, 1, size, size) standardized with the training
    set's mean and std, int64 labels; a fixed shuffled split."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ImportError("the digits data ships with scikit-learn: pip install scikit-learn "
                          "(or install onnxkit with its demo extra: pip install 'onnxkit[demo]')") from None
    d = _load()
    x = upscale(d.images.astype(np.float64) / 16.0, size)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    x_train, x_test = x[:-test_size], x[-test_size:]
    mean, std = x_train.mean(), x_train.std()
    norm = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return norm(x_train), y[:-test_size], norm(x_test), y[-test_size:]
