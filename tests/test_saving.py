"""ok.save / ok.load_state_dict_file (safetensors or .npz, no pickle, atomic), ok.load's errors for
weights files and damaged files, and the removal of temp files that killed saves left behind."""
import collections
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
import torch

import onnxkit as ok
from onnxkit import checkpoint, nn, optim


def _model():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


def _assert_same(got, want):
    assert list(got) == list(want)
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
        np.testing.assert_array_equal(got[k], want[k])


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".npz"])
def test_save_and_load_state_dict_file_round_trip(tmp_path, suffix):
    m = _model()
    m(ok.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))).numpy()  # non-trivial stats
    sd = m.state_dict()
    path = tmp_path / f"weights{suffix}"
    ok.save(sd, path)
    loaded = ok.load_state_dict_file(path)
    assert isinstance(loaded, collections.OrderedDict)
    _assert_same(loaded, sd)  # keys in the saved order, num_batches_tracked stays 0-d
    assert loaded["1.num_batches_tracked"].shape == ()
    fresh = _model()
    fresh.load_state_dict(loaded)
    _assert_same(fresh.state_dict(), sd)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            assert z.files == list(sd)
    else:
        from safetensors.numpy import load_file
        assert sorted(load_file(str(path))) == sorted(sd)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_save_takes_ok_tensors_torch_tensors_and_numbers(tmp_path):
    tm = torch.nn.Linear(3, 2)
    sd = collections.OrderedDict(tm.state_dict())
    sd["extra"] = ok.tensor(np.arange(4, dtype=np.int32))
    sd["scale"] = 2.5
    sd["half"] = torch.ones(2, dtype=torch.bfloat16)
    ok.save(sd, tmp_path / "w.safetensors")
    loaded = ok.load_state_dict_file(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(loaded["weight"], tm.weight.detach().numpy())
    np.testing.assert_array_equal(loaded["extra"], np.arange(4, dtype=np.int32))
    assert loaded["scale"].shape == () and float(loaded["scale"]) == 2.5
    assert loaded["half"].dtype.name == "bfloat16"
    # torch reads what onnxkit wrote
    from safetensors.torch import load_file
    theirs = load_file(str(tmp_path / "w.safetensors"))
    assert torch.equal(theirs["bias"], tm.bias.detach()) and theirs["half"].dtype == torch.bfloat16
    # file objects work too
    buf = io.BytesIO()
    ok.save({"a": np.ones(2, np.float32)}, buf)
    buf.seek(0)
    np.testing.assert_array_equal(ok.load_state_dict_file(buf)["a"], np.ones(2, np.float32))


def test_save_rejects_what_needs_pickle(tmp_path):
    with pytest.raises(TypeError, match="flat"):
        ok.save({"state": {"0": np.ones(2)}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="no pickle"):
        ok.save({"w": object()}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="keys must be strings"):
        ok.save({0: np.ones(2)}, tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    ok.save({"a": np.zeros(2, np.float32)}, path)
    import safetensors.numpy

    def boom(arrays, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        ok.save({"a": np.ones(2, np.float32)}, path)
    np.testing.assert_array_equal(ok.load_state_dict_file(path)["a"], np.zeros(2, np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_load_state_dict_file_refuses_pickle_and_names_damaged_files(tmp_path):
    pt = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), pt)
    with pytest.raises(ValueError, match=r"model\.pt is a PyTorch pickle file.*never unpickles.*safetensors"):
        ok.load_state_dict_file(pt)
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="legacy.pth is a PyTorch pickle file"):
        ok.load_state_dict_file(legacy)
    obj = tmp_path / "objects.npz"
    with zipfile.ZipFile(obj, "w") as zf, zf.open("w.npy", "w") as f:
        np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects.npz"):
        ok.load_state_dict_file(obj)
    good = tmp_path / "good.safetensors"
    ok.save({"a": np.ones((64, 64), np.float32)}, good)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cut.safetensors"):
        ok.load_state_dict_file(cut)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.safetensors is empty"):
        ok.load_state_dict_file(tmp_path / "empty.safetensors")
    (tmp_path / "junk.bin").write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="junk.bin is neither a safetensors nor an .npz file"):
        ok.load_state_dict_file(tmp_path / "junk.bin")
    with pytest.raises(FileNotFoundError):
        ok.load_state_dict_file(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt", ".safetensors"])
def test_ok_load_of_a_weights_file_says_what_to_use(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        ok.save(nn.Linear(2, 2).state_dict(), path)
    else:
        torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match=rf"weights\{suffix} is a state dict.*ok\.load_state_dict_file.*"
                                         r"model\.load_state_dict"):
        ok.load(str(path))


def test_ok_load_names_empty_truncated_and_foreign_files(tmp_path):
    model = ok.export(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), [ok.Input("x", ("N", 8))])
    data = model.SerializeToString()
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.onnx is empty"):
        ok.load(str(tmp_path / "empty.onnx"))
    for cut in (len(data) // 2, len(data) - 3, 40):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.onnx"):
            ok.load(str(tmp_path / "cut.onnx"))
    (tmp_path / "text.onnx").write_text("not a model at all\n" * 10)
    with pytest.raises(ValueError, match="text.onnx"):
        ok.load(str(tmp_path / "text.onnx"))
    # a safetensors file named .onnx is recognised by its content
    ok.save({"a": np.ones(2, np.float32)}, tmp_path / "weights.onnx")
    with pytest.raises(ValueError, match="weights.onnx is a state dict"):
        ok.load(str(tmp_path / "weights.onnx"))
    onnx.save(model, str(tmp_path / "fine.onnx"))
    assert ok.load(str(tmp_path / "fine.onnx"))(np.ones((1, 8), np.float32)).numpy().shape == (1, 2)


# ----- temp files of killed saves ---------------------------------------------------------------------
def _dead_pid():
    """The pid of a process that has exited."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_next_save_removes_temp_files_of_killed_saves(tmp_path):
    m = nn.Linear(3, 2)
    tr = ok.Trainer(m, nn.MSELoss(), optim.SGD(m.parameters(), lr=0.1))
    tr.step(np.ones((2, 3), np.float32), np.zeros((2, 2), np.float32))
    dead = tmp_path / f".ckpt.safetensors.tmp-{_dead_pid()}"
    dead.write_bytes(b"half a checkpoint")
    other_dead = tmp_path / f".other.safetensors.tmp-{_dead_pid()}"
    other_dead.write_bytes(b"half")
    live = tmp_path / f".ckpt.safetensors.tmp-{os.getppid()}"  # a live process (the parent): maybe saving now
    live.write_bytes(b"in progress")
    unrelated = tmp_path / "notes.tmp-1"
    unrelated.write_text("not ours")
    tr.save(tmp_path / "ckpt.safetensors")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["ckpt.safetensors", live.name, unrelated.name])
    # ok.save and ok.export use the same atomic writer and clean up the same way
    dead2 = tmp_path / f".w.safetensors.tmp-{_dead_pid()}"
    dead2.write_bytes(b"x")
    ok.save(m.state_dict(), tmp_path / "w.safetensors")
    dead3 = tmp_path / f".m.onnx.tmp-{_dead_pid()}"
    dead3.write_bytes(b"x")
    ok.export(m, [ok.Input("x", ("N", 3))], path=tmp_path / "m.onnx")
    assert not dead2.exists() and not dead3.exists() and live.exists()


def test_a_reused_pid_does_not_keep_an_old_temp_file(tmp_path):
    """A temp file older than the live process now holding its pid was left by an earlier process."""
    live = tmp_path / f".ckpt.safetensors.tmp-{os.getppid()}"
    live.write_bytes(b"old")
    started = checkpoint._process_start(os.getppid())
    if started is None:
        pytest.skip("process start times are not available here")
    os.utime(live, (started - 3600, started - 3600))
    checkpoint.save(tmp_path / "ckpt.safetensors", {"a": np.ones(2, np.float32)}, {"format": "x"})
    assert not live.exists()


def test_checkpoint_keeps_scalars_zero_dimensional(tmp_path):
    checkpoint.save(tmp_path / "c.safetensors", {"n": np.array(3, np.int64)}, {"k": 1})
    tensors, meta = checkpoint.load(tmp_path / "c.safetensors")
    assert tensors["n"].shape == () and meta == {"k": 1}
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(ValueError, match="bad.safetensors"):
        checkpoint.load(tmp_path / "bad.safetensors")


def test_save_points_a_module_to_its_state_dict(tmp_path):
    with pytest.raises(TypeError, match=r"pass model\.state_dict\(\)"):
        ok.save(nn.Linear(2, 2), tmp_path / "m.safetensors")


def test_saved_files_get_the_umask_permissions_not_0600(tmp_path):
    mask = os.umask(0o22)
    try:
        ok.save({"a": ok.tensor(np.ones(2, np.float32))}, tmp_path / "w.safetensors")
    finally:
        os.umask(mask)
    assert (os.stat(tmp_path / "w.safetensors").st_mode & 0o777) == 0o644
