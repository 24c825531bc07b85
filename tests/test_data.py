"""onnxkit.utils.data against torch.utils.data: batch contents and order, lengths, drop_last,
collation of tuples / dicts / numbers, random_split lengths; seeded shuffling."""
import collections
import warnings

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import onnxkit as ok
from onnxkit import nn, optim
from onnxkit.utils import data as okd
from onnxkit.utils.data import DataLoader, Dataset, Subset, TensorDataset, random_split


def _np(x):
    """torch's batch (nested tensors) as numpy, keeping the container structure."""
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: _np(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_np(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_np(v) for v in x)
    return x


def _same(got, want):
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w)
    elif isinstance(want, np.ndarray):
        assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want


X = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
Y = np.arange(10, dtype=np.int64) % 4


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (4, True), (10, False),
                                                  (10, True), (12, False), (12, True), (None, False)])
def test_batches_lengths_and_drop_last_match_torch(batch_size, drop_last):
    ours = DataLoader(TensorDataset(X, Y), batch_size=batch_size, drop_last=drop_last)
    theirs = tud.DataLoader(tud.TensorDataset(torch.tensor(X), torch.tensor(Y)), batch_size=batch_size,
                            drop_last=drop_last)
    assert len(ours) == len(theirs)
    got, want = list(ours), [_np(b) for b in theirs]
    assert len(got) == len(want) == len(ours)
    for g, w in zip(got, want):
        _same(g, w)


class DictData(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "label": i % 3, "weight": i / 2, "name": f"s{i}",
                "pair": (i, np.int32(-i))}


class TorchDictData(tud.Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "label": i % 3, "weight": i / 2, "name": f"s{i}",
                "pair": (i, np.int32(-i))}


def test_collate_of_dicts_tuples_numbers_and_strings_matches_torch():
    got = list(DataLoader(DictData(), batch_size=3))
    want = [_np(b) for b in tud.DataLoader(TorchDictData(), batch_size=3)]
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        _same(g, w)
    assert got[0]["weight"].dtype == np.float64 and got[0]["label"].dtype == np.int64  # as torch's collate


def test_collate_namedtuples_lists_and_tensors():
    Point = collections.namedtuple("Point", "x y")
    batch = [Point(np.ones(2, np.float32) * i, i) for i in range(3)]
    got, want = okd.default_collate(batch), _np(tud.default_collate(batch))
    assert isinstance(got, Point)
    _same(got.x, want.x)
    _same(got.y, want.y)
    _same(okd.default_collate([[1, 2.5], [3, 4.5]]), _np(tud.default_collate([[1, 2.5], [3, 4.5]])))
    # ok.Tensors and torch tensors in samples stack into numpy arrays
    stacked = okd.default_collate([ok.tensor(np.ones(2, np.float32)), torch.zeros(2)])
    assert isinstance(stacked, np.ndarray) and stacked.shape == (2, 2)
    with pytest.raises(RuntimeError, match="equal size"):
        okd.default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="default_collate"):
        okd.default_collate([None, None])


def test_sampler_and_batch_sampler_match_torch():
    order = [9, 2, 5, 0, 7, 1, 3]
    ours = DataLoader(TensorDataset(X, Y), batch_size=2, sampler=order)
    theirs = tud.DataLoader(tud.TensorDataset(torch.tensor(X), torch.tensor(Y)), batch_size=2, sampler=order)
    assert len(ours) == len(theirs) == 4
    for g, w in zip(ours, theirs):
        _same(g, _np(w))
    batches = [[3, 1], [0], [8, 8, 2]]
    ours = DataLoader(TensorDataset(X, Y), batch_sampler=batches)
    theirs = tud.DataLoader(tud.TensorDataset(torch.tensor(X), torch.tensor(Y)), batch_sampler=batches)
    for g, w in zip(ours, theirs):
        _same(g, _np(w))
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(TensorDataset(X), sampler=order, shuffle=True)
    with pytest.raises(ValueError, match="mutually exclusive with drop_last"):
        DataLoader(TensorDataset(X), batch_size=None, drop_last=True)


def test_tensor_dataset_takes_numpy_ok_and_torch_tensors_and_checks_lengths():
    ds = TensorDataset(X, ok.tensor(Y), torch.tensor(X * 2))
    assert len(ds) == 10 and all(isinstance(t, np.ndarray) for t in ds.tensors)
    x, y, z = ds[4]
    np.testing.assert_array_equal(x, X[4])
    assert y == Y[4]
    np.testing.assert_array_equal(z, X[4] * 2)
    with pytest.raises(ValueError, match=r"Size mismatch between tensors.*\[10, 9\]"):
        TensorDataset(X, Y[:9])


def test_shuffle_is_a_permutation_new_each_epoch_and_reproducible_with_manual_seed():
    def epochs(loader, n=2):
        return [np.concatenate([yb for _, yb in loader]) for _ in range(n)]

    ds = TensorDataset(X, np.arange(10))
    ok.manual_seed(3)
    first = epochs(DataLoader(ds, batch_size=4, shuffle=True))
    ok.manual_seed(3)
    again = epochs(DataLoader(ds, batch_size=4, shuffle=True))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
        assert sorted(a.tolist()) == list(range(10))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], np.arange(10))
    # generator= an int seed or a numpy Generator: independent of ok.manual_seed
    a = epochs(DataLoader(ds, batch_size=4, shuffle=True, generator=7), 1)[0]
    ok.manual_seed(99)
    b = epochs(DataLoader(ds, batch_size=4, shuffle=True, generator=np.random.default_rng(7)), 1)[0]
    np.testing.assert_array_equal(a, b)
    # drop_last with shuffle: full batches only
    assert [len(yb) for _, yb in DataLoader(ds, batch_size=4, shuffle=True, drop_last=True)] == [4, 4]


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.25, 0.25, 0.5], [0.34, 0.33, 0.33], [1.0], [10],
                                     [0.1] * 10, [0.5, 0.5, 0.0]])
def test_random_split_lengths_match_torch(lengths):
    ds = TensorDataset(X, Y)
    with pytest.warns(UserWarning) if 0 in lengths or 0.0 in lengths else _nothing():
        ours = random_split(ds, lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = tud.random_split(range(10), lengths)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    seen = sorted(i for s in ours for i in s.indices)
    assert seen == list(range(10))
    assert all(isinstance(s, Subset) for s in ours)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_random_split_errors_and_seeding():
    ds = TensorDataset(X, Y)
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        random_split(ds, [0.5, 1.5, -1.0])
    a = [s.indices for s in random_split(ds, [0.5, 0.5], generator=1)]
    b = [s.indices for s in random_split(ds, [0.5, 0.5], generator=np.random.default_rng(1))]
    assert a == b
    ok.manual_seed(5)
    c = [s.indices for s in random_split(ds, [4, 6])]
    ok.manual_seed(5)
    assert c == [s.indices for s in random_split(ds, [4, 6])]
    sub = random_split(ds, [4, 6], generator=0)[0]
    x, y = sub[1]
    np.testing.assert_array_equal(x, X[sub.indices[1]])


def test_subset_concat_and_iterable_datasets():
    ds = TensorDataset(X, Y)
    sub = Subset(ds, [8, 1, 5])
    got = list(DataLoader(sub, batch_size=2))
    want = [_np(b) for b in tud.DataLoader(tud.Subset(tud.TensorDataset(torch.tensor(X), torch.tensor(Y)),
                                                      [8, 1, 5]), batch_size=2)]
    for g, w in zip(got, want):
        _same(g, w)
    both = ds + sub
    assert len(both) == 13
    np.testing.assert_array_equal(both[11][0], X[1])

    class Stream(okd.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    class TorchStream(tud.IterableDataset):
        def __iter__(self):
            return iter(range(7))

        def __len__(self):
            return 7

    for bs, dl in [(3, False), (3, True), (None, False)]:
        ours, theirs = DataLoader(Stream(), batch_size=bs, drop_last=dl), tud.DataLoader(TorchStream(), batch_size=bs,
                                                                                          drop_last=dl)
        assert len(ours) == len(theirs)
        got, want = list(ours), [_np(b) for b in theirs]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            if isinstance(w, np.ndarray):
                _same(g, w)
            else:
                assert g == w


def test_batches_feed_ok_tensor_and_trainer():
    ds = TensorDataset(np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32), np.arange(12) % 2)
    model = nn.Linear(3, 2)
    trainer = ok.Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    for xb, yb in DataLoader(ds, batch_size=4, shuffle=True):
        assert ok.tensor(xb).shape == (4, 3)
        loss = trainer.step(xb, yb)
        assert np.isfinite(loss)
    assert trainer.step_count == 3
