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


# ----- the seed's baseline table on bundled data ------------------------------------------------
# Every loader returns a Dataset: float32 features standardized with the training split's statistics,
# a fixed 20 % test split (seed 0; stratified on the class label for classification tasks, on
# deciles of the target for diabetes; linnerud's 20 samples are split unstratified).

class Dataset:
    """x_train, y_train, x_test, y_test plus what the workflow needs to build a model for it:
    `task` (a key of nn.BASELINE_HEADS, or "reconstruction"), `input_shape` (one sample),
    `out_features` and `classes` / `labels` names."""

    def __init__(self, name, task, x_train, y_train, x_test, y_test, out_features, classes=None, labels=None):
        self.name, self.task = name, task
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.out_features, self.classes, self.labels = out_features, classes, labels

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    def __repr__(self):
        return (f"Dataset({self.name!r}, task={self.task!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
                f"input_shape={self.input_shape}, out_features={self.out_features})")


def _sklearn():
    try:
        import sklearn.datasets as ds
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError("the bundled data sets ship with scikit-learn: pip install scikit-learn "
                          "(or install onnxkit with its demo extra: pip install 'onnxkit[demo]')") from None
    return ds, train_test_split


def _split(n, stratify, seed=0, test_size=0.2):
    """Train and test row indices: a shuffled split with seed `seed`, stratified on `stratify` when given."""
    _, train_test_split = _sklearn()
    return train_test_split(np.arange(n), test_size=test_size, random_state=seed, stratify=stratify)


def _standardize(train, test, axis=None):
    mean, std = train.mean(axis=axis), train.std(axis=axis)
    std = np.where(std > 0, std, 1.0)
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def _digits(seed):
    ds, _ = _sklearn()
    d = ds.load_digits()
    tr, te = _split(len(d.target), d.target, seed)
    return d.images.astype(np.float64) / 16.0, d.target.astype(np.int64), tr, te


def digits_images(size=28, seed=0):
    """Multi-class: digits as (1, size, size) images (bilinear upscale; 28 for LeNet-5, 32 for the
    ResNet), int64 labels 0-9."""
    images, y, tr, te = _digits(seed)
    x = upscale(images, size)[:, None] if size != 8 else images[:, None]
    x_train, x_test = _standardize(x[tr], x[te])
    return Dataset("digits", "multiclass", x_train, y[tr], x_test, y[te], 10, classes=[str(i) for i in range(10)])


def digits_rows(seed=0):
    """Multi-class sequences: each 8x8 digit read top to bottom as 8 steps of 8 pixel features."""
    images, y, tr, te = _digits(seed)
    x_train, x_test = _standardize(images[tr], images[te])
    return Dataset("digits_rows", "multiclass", x_train, y[tr], x_test, y[te], 10,
                   classes=[str(i) for i in range(10)])


def digits_multilabel(seed=0):
    """Multi-label: the 64 pixels of a digit -> two independent yes/no labels, "even" and ">= 5",
    as float32 (N, 2) multi-hot targets (split stratified on the digit)."""
    images, y, tr, te = _digits(seed)
    x = images.reshape(len(y), 64)
    targets = np.stack([y % 2 == 0, y >= 5], axis=1).astype(np.float32)
    x_train, x_test = _standardize(x[tr], x[te])
    return Dataset("digits_multilabel", "multilabel", x_train, targets[tr], x_test, targets[te], 2,
                   labels=["even", ">=5"])


def digits_reconstruction(seed=0):
    """Reconstruction: 1x8x8 digit images scaled to [0, 1]; the target is the image itself."""
    images, y, tr, te = _digits(seed)
    x = images[:, None].astype(np.float32)
    return Dataset("digits_reconstruction", "reconstruction", x[tr], x[tr], x[te], x[te], None)


def breast_cancer(seed=0):
    """Binary: 30 tumour measurements -> malignant (0) / benign (1) as a float32 (N, 1) target."""
    ds, _ = _sklearn()
    d = ds.load_breast_cancer()
    y = d.target.astype(np.float32)[:, None]
    tr, te = _split(len(y), d.target, seed)
    x_train, x_test = _standardize(d.data[tr], d.data[te], axis=0)
    return Dataset("breast_cancer", "binary", x_train, y[tr], x_test, y[te], 1,
                   classes=[str(c) for c in d.target_names])


def diabetes(seed=0):
    """Regression: 10 baseline variables -> disease progression after one year, (N, 1) float32,
    standardized with the training split (R^2 is the same on either scale)."""
    ds, _ = _sklearn()
    d = ds.load_diabetes()
    bins = np.digitize(d.target, np.quantile(d.target, np.linspace(0, 1, 11)[1:-1]))  # deciles
    tr, te = _split(len(d.target), bins, seed)
    x_train, x_test = _standardize(d.data[tr], d.data[te], axis=0)
    y_train, y_test = _standardize(d.target[tr, None], d.target[te, None], axis=0)
    return Dataset("diabetes", "regression", x_train, y_train, x_test, y_test, 1)


def linnerud(seed=0):
    """Vector regression: 3 exercise counts -> 3 physiological measurements (20 athletes, so a 16/4
    split, unstratified), standardized per column with the training split."""
    ds, _ = _sklearn()
    d = ds.load_linnerud()
    tr, te = _split(len(d.target), None, seed)
    x_train, x_test = _standardize(d.data[tr], d.data[te], axis=0)
    y_train, y_test = _standardize(d.target[tr], d.target[te], axis=0)
    return Dataset("linnerud", "vector_regression", x_train, y_train, x_test, y_test, 3,
                   labels=list(d.target_names))


DATASETS = {"digits": digits_images, "digits_rows": digits_rows, "digits_multilabel": digits_multilabel,
            "digits_reconstruction": digits_reconstruction, "breast_cancer": breast_cancer, "diabetes": diabetes,
            "linnerud": linnerud}


def load(name, **kwargs):
    """A Dataset by name (see DATASETS)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)


def linear_baseline(dataset):
    """Test MSE of ordinary least squares (with intercept) fit on the training split: the yardstick for
    the regression tasks."""
    a = np.c_[dataset.x_train.reshape(len(dataset.x_train), -1), np.ones(len(dataset.x_train))]
    b = np.c_[dataset.x_test.reshape(len(dataset.x_test), -1), np.ones(len(dataset.x_test))]
    coef, *_ = np.linalg.lstsq(a, dataset.y_train.astype(np.float64), rcond=None)
    return float(np.mean((b @ coef - dataset.y_test) ** 2))
