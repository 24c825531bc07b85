"""nn.utils.rnn against torch: PackedSequence, pack_padded_sequence (enforce_sorted True/False),
pad_packed_sequence (total_length, padding_value), pad_sequence, pack_sequence, unpack_sequence, and
a packed batch whose lengths are a graph input of an exported model."""
import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from onnxkit.nn.utils import rnn as ournn

trnn = torch.nn.utils.rnn
torch.set_num_threads(1)


def _padded(T=6, B=4, F=3, seed=0):
    return np.random.default_rng(seed).standard_normal((T, B, F)).astype(np.float32)


@pytest.mark.parametrize("enforce_sorted,lengths", [(True, [6, 4, 4, 1]), (False, [2, 6, 1, 4]), (False, [3, 3, 5, 3])])
@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_padded_matches_torch(enforce_sorted, lengths, batch_first):
    x = _padded()
    if batch_first:
        x = x.transpose(1, 0, 2).copy()
    tp = trnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=batch_first,
                                   enforce_sorted=enforce_sorted)
    op = ournn.pack_padded_sequence(ok.tensor(x), lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(op.data.numpy(), tp.data.numpy())
    np.testing.assert_array_equal(op.batch_sizes.numpy(), tp.batch_sizes.numpy())
    if enforce_sorted:
        assert tp.sorted_indices is None
    else:
        np.testing.assert_array_equal(op.sorted_indices.numpy(), tp.sorted_indices.numpy())
        np.testing.assert_array_equal(op.unsorted_indices.numpy(), tp.unsorted_indices.numpy())
    data, batch_sizes, sorted_indices, unsorted_indices = op  # unpacks like torch's namedtuple
    assert data is op.data
    for total, pad_value in ((None, 0.0), (9, -1.5)):
        tpad, tl = trnn.pad_packed_sequence(tp, batch_first=batch_first, padding_value=pad_value, total_length=total)
        opad, ol = ournn.pad_packed_sequence(op, batch_first=batch_first, padding_value=pad_value, total_length=total)
        np.testing.assert_array_equal(opad.numpy(), tpad.numpy())
        np.testing.assert_array_equal(ol.numpy(), tl.numpy())


def test_packed_sequence_from_torch_fields_through_lstm():
    """A PackedSequence built from torch's (data, batch_sizes, sorted_indices, unsorted_indices)."""
    lengths = [2, 5, 3]
    tp = trnn.pack_padded_sequence(torch.tensor(_padded(5, 3, 3, 1)), torch.tensor(lengths), enforce_sorted=False)
    op = ournn.PackedSequence(ok.tensor(tp.data.numpy()), ok.tensor(tp.batch_sizes.numpy()),
                              ok.tensor(tp.sorted_indices.numpy()), ok.tensor(tp.unsorted_indices.numpy()))
    np.testing.assert_array_equal(op.data.numpy(), tp.data.numpy())
    torch.manual_seed(0)
    tm, om = torch.nn.LSTM(3, 4, bidirectional=True), nn.LSTM(3, 4, bidirectional=True)
    om.load_state_dict(tm.state_dict())
    to, (th, tc) = tm(tp)
    oo, (oh, oc) = om(op)
    np.testing.assert_allclose(oo.data.numpy(), to.data.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(oo.batch_sizes.numpy(), to.batch_sizes.numpy())
    np.testing.assert_allclose(oh.numpy(), th.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(oc.numpy(), tc.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence_and_pack_sequence(batch_first, side):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, 2)).astype(np.float32) for n in (3, 5, 1)]
    tp = trnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=batch_first, padding_value=7.0,
                           padding_side=side)
    op = ournn.pad_sequence([ok.tensor(s) for s in seqs], batch_first=batch_first, padding_value=7.0,
                            padding_side=side)
    np.testing.assert_array_equal(op.numpy(), tp.numpy())
    tpk = trnn.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    opk = ournn.pack_sequence([ok.tensor(s) for s in seqs], enforce_sorted=False)
    np.testing.assert_array_equal(opk.data.numpy(), tpk.data.numpy())
    for a, b in zip(ournn.unpack_sequence(opk), trnn.unpack_sequence(tpk)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    padded, lens = trnn.pad_packed_sequence(tpk, batch_first=True)
    for a, b in zip(ournn.unpad_sequence(ok.tensor(padded.numpy()), lens.numpy(), batch_first=True),
                    trnn.unpad_sequence(padded, lens, batch_first=True)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_gradient_through_pack_and_pad():
    x = _padded(5, 3, 2, 3)
    lengths = [2, 5, 4]
    tx = torch.tensor(x, requires_grad=True)
    ox = ok.tensor(x, requires_grad=True)
    w = np.random.default_rng(9).standard_normal((10, 3, 2)).astype(np.float32)
    tp = trnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
    op = ournn.pack_padded_sequence(ox, lengths, enforce_sorted=False)
    wd = np.random.default_rng(8).standard_normal(tuple(tp.data.shape)).astype(np.float32)
    t_loss = (tp.data * torch.tensor(wd)).sum() + (trnn.pad_packed_sequence(tp, total_length=10)[0]
                                                    * torch.tensor(w)).sum()
    o_loss = (op.data * ok.tensor(wd)).sum() + (ournn.pad_packed_sequence(op, total_length=10)[0] * ok.tensor(w)).sum()
    (tg,), (og,) = torch.autograd.grad(t_loss, [tx]), ok.grad(o_loss, [ox])
    np.testing.assert_allclose(og.numpy(), tg.numpy(), rtol=1e-6)


def test_errors():
    x = ok.tensor(_padded())
    with pytest.raises(RuntimeError, match=r"must be sorted in decreasing order when `enforce_sorted` is True.*"
                                           r"\[2, 6, 1, 4\]"):
        ournn.pack_padded_sequence(x, [2, 6, 1, 4])
    with pytest.raises(ValueError, match=r"lengths\[1\] = 8 is longer than the sequence \(the input has 6 time "):
        ournn.pack_padded_sequence(x, [6, 8, 1, 4], enforce_sorted=False)
    with pytest.raises(ValueError, match=r"expected 4 lengths \(the batch size\), got 3"):
        ournn.pack_padded_sequence(x, [6, 5, 1])
    with pytest.raises(ValueError, match=r"larger than 0, got lengths\[3\] = 0"):
        ournn.pack_padded_sequence(x, [6, 5, 1, 0])
    p = ournn.pack_padded_sequence(x, [6, 5, 1, 1])
    with pytest.raises(ValueError, match=r"total_length=4 and max sequence length being 6"):
        ournn.pad_packed_sequence(p, total_length=4)
    # batch_first mismatch: (B, T, F) data read as (T, B, F) has B time steps -> lengths too long
    with pytest.raises(ValueError, match=r"longer than the sequence \(the input has 3 time steps\)"):
        ournn.pack_padded_sequence(ok.randn(3, 8, 2), [8, 8, 8, 8, 8, 8, 8, 8])


@pytest.mark.parametrize("family", ["LSTM", "GRU", "RNN"])
def test_export_lengths_as_graph_input(family):
    """One .onnx with lengths as an int64 input serves any batch of lengths; pad_packed_sequence without
    total_length cuts the output to max(lengths) in the graph."""
    torch.manual_seed(0)
    tm = getattr(torch.nn, family)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    om = getattr(nn, family)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    om.load_state_dict(tm.state_dict())

    def fn(x, lengths):
        out, h = om(ournn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        padded, _ = ournn.pad_packed_sequence(out, batch_first=True)
        return padded, (h[0] if family == "LSTM" else h)

    model = ok.export(fn, [ok.Input("x", ("N", "T", 3)), ok.Input("lengths", ("N",), "int64")])
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["x", "lengths"]
    sess = ok.Session(model)
    for N, T, lengths in ((3, 7, [2, 5, 3]), (5, 4, [4, 1, 4, 2, 3]), (2, 6, [1, 2])):
        x = np.random.default_rng(N).standard_normal((N, T, 3)).astype(np.float32)
        got = sess.run({"x": x, "lengths": np.array(lengths, np.int64)})
        with torch.no_grad():
            out, h = tm(trnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                  enforce_sorted=False))
            padded, _ = trnn.pad_packed_sequence(out, batch_first=True)
            h = h[0] if family == "LSTM" else h
        np.testing.assert_allclose(got["output_0"], padded.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["output_1"], h.numpy(), rtol=1e-5, atol=1e-6)


def test_run_time_lengths_longer_than_sequence_fail_in_onnxruntime():
    """Lengths fed as a graph input are not validated in the graph (documented in nn.utils.rnn): a length
    longer than the padded sequence is onnxruntime's sequence_lens error."""
    lstm = nn.LSTM(2, 3)
    model = ok.export(lambda x, l: lstm(ournn.pack_padded_sequence(x, l, enforce_sorted=False))[1][0],
                      [ok.Input("x", ("T", "N", 2)), ok.Input("l", ("N",), "int64")])
    sess = ok.Session(model)
    with pytest.raises(Exception, match="sequence_lens"):
        sess.run({"x": np.zeros((3, 2, 2), np.float32), "l": np.array([5, 1])})
