"""The Trainer: steps equal to torch's, trained values visible in state_dict and eager code, non-finite
losses, checkpoints that resume the exact trajectory, fit/evaluate/predict, LeNet-5 on the bundled
digits, and the README demo end to end."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn, optim

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the model zoo (models/) sits at the repository root

from models.data import load_digits  # noqa: E402
from models.lenet import LeNet5  # noqa: E402


def data(n=16, seed=0, classes=None):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 6)).astype(np.float32)
    y = r.integers(0, classes, n) if classes else r.standard_normal((n, 3)).astype(np.float32)
    return x, y


def pair():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    om = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    om.load_state_dict(tm.state_dict())
    return tm, om


def test_steps_match_torch_and_trained_values_are_visible():
    tm, om = pair()
    t_opt = torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    opt = optim.SGD(om.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    tr = ok.Trainer(om, nn.MSELoss(), opt)
    for i in range(6):
        x, y = data(seed=i)
        t_opt.zero_grad()
        tl = torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        t_opt.step()
        np.testing.assert_allclose(tr.step(x, y), tl.item(), rtol=1e-5)
    assert tr.step_count == 6
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-7, err_msg=k)
    t_state, o_state = t_opt.state_dict()["state"], opt.state_dict()["state"]
    for i in t_state:
        np.testing.assert_allclose(o_state[i]["momentum_buffer"], t_state[i]["momentum_buffer"].numpy(),
                                   rtol=1e-5, atol=1e-7)
        assert o_state[i]["step"] == 6
    x, _ = data(seed=9)
    with torch.no_grad():
        expected = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(om(ok.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)  # eager code sees them
    np.testing.assert_allclose(tr.predict(x), expected, rtol=1e-5, atol=1e-6)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 3), nn.Linear(2, 3)

    def forward(self, x, z):
        return self.a(x) + self.b(z)


def test_several_inputs_the_last_argument_is_the_target():
    ok.manual_seed(0)
    model = TwoInputs()
    tr = ok.Trainer(model, nn.MSELoss(), optim.Adam(model.parameters(), lr=0.01))
    x, y = data()
    z = np.ones((16, 2), np.float32)
    losses = [tr.step(x, z, y) for _ in range(5)]
    assert losses[-1] < losses[0]
    assert [i.name for i in tr.training_model.graph.input[:3]] == ["input_0", "input_1", "target"]
    np.testing.assert_allclose(tr.predict(x, z), model(ok.tensor(x), ok.tensor(z)).numpy(), rtol=1e-5, atol=1e-6)


def test_nonfinite_loss_names_the_step_and_keeps_the_previous_values():
    _, om = pair()
    tr = ok.Trainer(om, nn.MSELoss(), optim.SGD(om.parameters(), lr=0.1, momentum=0.9))
    x, y = data()
    tr.step(x, y)
    tr.step(x, y)
    before = om.state_dict()
    bad = y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="at step 3"):
        tr.step(x, bad)
    for k, v in om.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert tr.step_count == 2
    assert np.isfinite(tr.step(x, y)) and tr.step_count == 3


def make_dropout_trainer(seed):
    ok.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)
    return model, ok.Trainer(model, nn.MSELoss(), opt, scheduler=sched, scheduler_interval="step", seed=11)


def test_checkpoint_resume_reproduces_the_uninterrupted_trajectory(tmp_path):
    path = tmp_path / "run.ckpt"
    batches = [data(seed=i) for i in range(6)]
    model, tr = make_dropout_trainer(0)
    for b in batches[:3]:
        tr.step(*b)
    tr.save(path)
    expected = [tr.step(*b) for b in batches[3:]]
    expected_params = model.state_dict()
    assert os.listdir(tmp_path) == ["run.ckpt"], "the atomic write leaves no temporary file"
    model2, tr2 = make_dropout_trainer(1)  # a different initialization, then the checkpoint
    tr2.load(path)
    assert tr2.step_count == 3 and tr2.seed == 11
    np.testing.assert_array_equal([tr2.step(*b) for b in batches[3:]], expected)
    for k, v in model2.state_dict().items():
        np.testing.assert_array_equal(v, expected_params[k], err_msg=k)
    assert tr2.scheduler.get_last_lr() == tr.scheduler.get_last_lr()
    assert tr2.optimizer.param_groups[0]["betas"] == tr.optimizer.param_groups[0]["betas"]


def test_checkpoint_files_are_safetensors_without_pickle(tmp_path):
    from safetensors.numpy import save_file
    _, om = pair()
    tr = ok.Trainer(om, nn.MSELoss(), optim.RMSprop(om.parameters(), lr=0.01, momentum=0.5))
    tr.step(*data())
    tr.save(tmp_path / "a.ckpt")
    from safetensors import safe_open
    with safe_open(str(tmp_path / "a.ckpt"), "np") as f:
        keys = set(f.keys())
    assert {"model/0.weight", "optimizer/0/square_avg", "optimizer/0/momentum_buffer"} <= keys
    save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "b.ckpt"))
    with pytest.raises(ValueError, match="not an onnxkit checkpoint"):
        tr.load(tmp_path / "b.ckpt")


def test_external_changes_to_parameters_are_used_by_the_next_step():
    _, om = pair()
    tr = ok.Trainer(om, nn.MSELoss(), optim.SGD(om.parameters(), lr=0.1))
    x, y = data()
    tr.step(x, y)
    _, fresh = pair()
    om.load_state_dict(fresh.state_dict())
    with ok.no_grad():
        om[2].bias -= 1.0  # a deferred in-place update
    _, ref = pair()
    with ok.no_grad():
        ref[2].bias -= 1.0
    expected = ok.Trainer(ref, nn.MSELoss(), optim.SGD(ref.parameters(), lr=0.1)).step(x, y)
    assert tr.step(x, y) == pytest.approx(expected, rel=1e-6)


def test_fit_history_progress_and_seeded_shuffling(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # the bar is drawn on terminals only
    x, y = data(64, classes=3)
    vx, vy = data(20, seed=5, classes=3)
    histories = []
    for seed in (3, 3, 4):
        _, om = pair()
        tr = ok.Trainer(om, nn.CrossEntropyLoss(), optim.SGD(om.parameters(), lr=0.1), seed=seed)
        histories.append(tr.fit(x, y, epochs=3, batch_size=16, validation=(vx, vy)))
    err = capsys.readouterr().err
    assert "epoch 3 [" in err and "epoch 3: loss" in err and "val_accuracy" in err

    h = histories[0]
    assert sorted(h) == ["loss", "val_accuracy", "val_loss"] and all(len(v) == 3 for v in h.values())
    assert histories[0] == histories[1], "the same seed shuffles the same way"
    assert histories[0]["loss"] != histories[2]["loss"]
    assert 0.0 <= h["val_accuracy"][-1] <= 1.0


def test_fit_off_a_terminal_prints_epoch_lines_only(capsys):
    x, y = data(32, classes=3)
    _, om = pair()
    ok.Trainer(om, nn.CrossEntropyLoss(), optim.SGD(om.parameters(), lr=0.1)).fit(x, y, epochs=2, batch_size=8)
    err = capsys.readouterr().err
    assert "epoch 2: loss" in err and "[" not in err


def test_evaluate_matches_the_eager_model():
    _, om = pair()
    tr = ok.Trainer(om, nn.CrossEntropyLoss(), optim.Adam(om.parameters(), lr=0.01))
    x, y = data(40, classes=3)
    tr.fit(x, y, epochs=2, batch_size=8, verbose=False)
    result = tr.evaluate(x, y, batch_size=16)
    om.eval()
    logits = om(ok.tensor(x)).numpy()
    assert result["loss"] == pytest.approx(nn.CrossEntropyLoss()(ok.tensor(logits), ok.tensor(y)).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(float((logits.argmax(1) == y).mean()))


def test_graphs_are_available_after_the_first_batch():
    _, om = pair()
    tr = ok.Trainer(om, nn.MSELoss(), optim.SGD(om.parameters(), lr=0.1))
    with pytest.raises(RuntimeError, match="first batch"):
        tr.training_model
    tr.build(*data())
    assert [o.name for o in tr.eval_model.graph.output] == ["output"]
    assert tr.training_model.graph.output[0].name == "loss"


def test_lenet5_reaches_95_percent_on_bundled_digits():
    x_train, y_train, x_test, y_test = load_digits()
    ok.manual_seed(0)
    model = LeNet5()
    tr = ok.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=2e-3), seed=0)
    history = tr.fit(x_train, y_train, epochs=10, batch_size=64, validation=(x_test, y_test), verbose=False)
    assert history["val_accuracy"][-1] >= 0.95, history["val_accuracy"]


def test_demo_trains_exports_and_runs_through_onnx_run(tmp_path):
    cmd = [sys.executable, "-m", "onnxkit.demo", "--model", "mlp", "--epochs", "2", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ran digits_mlp.onnx on cpu" in proc.stdout
    accuracy = float(proc.stdout.split("test accuracy of the exported model under onnx-run: ")[1].split()[0])
    assert accuracy > 0.8 and (tmp_path / "digits_mlp.onnx").exists()


def test_float64_data_trains_a_float32_model():
    """numpy's default float64 batches are converted to the model's float dtype (the graph input's)."""
    _, om = pair()
    tr = ok.Trainer(om, nn.CrossEntropyLoss(), optim.SGD(om.parameters(), lr=0.1))
    x, y = data(16, classes=3)
    x64 = x.astype(np.float64)
    assert np.isfinite(tr.step(x64, y))
    h = tr.fit(x64, y, epochs=1, batch_size=8, validation=(x64, y), verbose=False)
    assert np.isfinite(h["loss"][0]) and tr.predict(x64).dtype == np.float32


def test_fit_stopped_by_a_nonfinite_loss_keeps_the_completed_epochs_history():
    """Regression: the history of the epochs before the divergence was only in the trainer, not the error."""
    m = nn.Linear(1, 1)
    tr = ok.Trainer(m, nn.MSELoss(), optim.SGD(m.parameters(), lr=3.0))  # diverges: |w| grows x11 per step
    x, y = np.ones((4, 1), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(FloatingPointError, match="at step") as info:
        tr.fit(x, y, epochs=200, batch_size=4, validation=(x, y), verbose=False)
    history = info.value.history
    done = len(history["loss"])
    assert 1 < done < 200 and tr.step_count == done and tr.epoch == done + 1
    assert len(history["val_loss"]) == done and all(np.isfinite(history["loss"]))
    assert tr.history == history
    assert np.isfinite(m.state_dict()["weight"]).all()


def test_num_batches_tracked_stays_zero_dimensional_after_steps_and_checkpoints(tmp_path):
    """Regression: np.ascontiguousarray made BatchNorm's 0-d num_batches_tracked (1,) after Trainer.step."""
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3))
    om = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    om.load_state_dict(tm.state_dict())
    tr = ok.Trainer(om, nn.MSELoss(), optim.SGD(om.parameters(), lr=0.1))
    topt = torch.optim.SGD(tm.parameters(), lr=0.1)
    x, y = data()
    for _ in range(2):
        tr.step(x, y)
        topt.zero_grad()
        torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y)).backward()
        topt.step()
    sd, want = om.state_dict(), tm.state_dict()
    assert sd["1.num_batches_tracked"].shape == want["1.num_batches_tracked"].shape == ()
    assert int(sd["1.num_batches_tracked"]) == int(want["1.num_batches_tracked"]) == 2
    for k, v in want.items():
        assert sd[k].shape == tuple(v.shape), k
    tr.save(tmp_path / "ckpt.safetensors")
    from safetensors.numpy import load_file
    assert load_file(str(tmp_path / "ckpt.safetensors"))["model/1.num_batches_tracked"].shape == ()
    tr.load(tmp_path / "ckpt.safetensors")
    tr.step(x, y)
    assert om.state_dict()["1.num_batches_tracked"].shape == ()
