"""Optimizers, LR schedulers and gradient clipping against torch.optim (the oracle).

Each optimizer row runs 20 steps from the same start three ways: torch, onnxkit's torch-style loop
(`opt.zero_grad(); loss.backward(); opt.step()`, one onnxruntime run per step) and the Trainer's
one-graph step; losses and final parameters must agree (rtol 1e-4). Add a configuration by adding a
row. Scheduler rows compare the learning rates (and cycled momentum / beta1) step by step."""
import math

import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn, optim, runtime
from onnxkit.nn.utils import clip_grad_norm_, clip_grad_value_, clip_grad_norm

STEPS = 20
RNG = np.random.default_rng(0)
BATCHES = [(RNG.standard_normal((8, 5)).astype(np.float32), RNG.standard_normal((8, 3)).astype(np.float32))
           for _ in range(4)]


def models():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    om = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    om.load_state_dict(tm.state_dict())
    return tm, om


def param_spec(model, groups):
    """model.parameters(), or groups given as [{"layer": i, **options}]."""
    if groups is None:
        return model.parameters()
    return [{**{k: v for k, v in g.items() if k != "layer"}, "params": list(model[g["layer"]].parameters())}
            for g in groups]


def torch_run(name, kwargs, groups, steps=STEPS, sched=None):
    tm, _ = models()
    opt = getattr(torch.optim, name)(param_spec(tm, groups), **kwargs)
    s = sched(torch.optim.lr_scheduler, opt) if sched else None
    losses = []
    for i in range(steps):
        x, y = BATCHES[i % len(BATCHES)]
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        opt.step()
        if s:
            s.step()
        losses.append(loss.item())
    return np.array(losses), {k: v.detach().numpy() for k, v in tm.state_dict().items()}


def eager_run(name, kwargs, groups, steps=STEPS):
    _, om = models()
    opt = getattr(optim, name)(param_spec(om, groups), **kwargs)
    loss_fn = nn.MSELoss()
    losses, runs = [], runtime.stats["run"]
    for i in range(steps):
        x, y = BATCHES[i % len(BATCHES)]
        opt.zero_grad()
        loss = loss_fn(om(ok.tensor(x)), ok.tensor(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert runtime.stats["run"] - runs == steps, "a torch-style step should be one onnxruntime run"
    return np.array(losses), om.state_dict()


def trainer_run(name, kwargs, groups, steps=STEPS, sched=None, interval="step", **trainer_kw):
    _, om = models()
    opt = getattr(optim, name)(param_spec(om, groups), **kwargs)
    s = sched(optim.lr_scheduler, opt) if sched else None
    tr = ok.Trainer(om, nn.MSELoss(), opt, scheduler=s, scheduler_interval=interval, **trainer_kw)
    losses = [tr.step(*BATCHES[i % len(BATCHES)]) for i in range(steps)]
    return np.array(losses), om.state_dict()


OPT_ROWS = [
    ("SGD", dict(lr=0.1), None),
    ("SGD", dict(lr=0.1, momentum=0.9), None),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=0.01), None),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1), None),
    ("SGD", dict(lr=0.01, momentum=0.5, maximize=True), None),
    ("SGD", dict(lr=0.1, momentum=0.9), [{"layer": 0, "lr": 0.02}, {"layer": 2, "momentum": 0.5}]),
    ("Adam", dict(lr=0.01), None),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True), None),
    ("Adam", dict(lr=0.01, maximize=True, eps=1e-6), None),
    ("Adam", dict(lr=0.01), [{"layer": 0, "betas": (0.5, 0.9)}, {"layer": 2, "weight_decay": 0.05}]),
    ("AdamW", dict(lr=0.01), None),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True), None),
    ("RMSprop", dict(lr=0.01), None),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9, centered=True, weight_decay=0.01), None),
    ("RMSprop", dict(lr=0.005, centered=True, maximize=True), None),
    ("Adagrad", dict(lr=0.1), None),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-8), None),
    ("Adadelta", dict(), None),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.01, maximize=True), None),
    ("Adamax", dict(lr=0.01), None),
    ("Adamax", dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.05, eps=1e-6), None),
]


def _id(row):
    name, kw, groups = row
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items()) + ("-groups" if groups else "")


def _close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=what)


@pytest.mark.parametrize("row", OPT_ROWS, ids=[_id(r) for r in OPT_ROWS])
def test_optimizer_trajectory_matches_torch(row):
    t_losses, t_params = torch_run(*row)
    for run in (eager_run, trainer_run):
        losses, params = run(*row)
        _close(losses, t_losses, f"{run.__name__}: losses")
        for k, v in t_params.items():
            _close(params[k], v, f"{run.__name__}: {k}")


SCHED_ROWS = [
    ("StepLR", "SGD", dict(lr=0.1, momentum=0.9), lambda m, o: m.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", "SGD", dict(lr=0.1), lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", "Adam", dict(lr=0.01), lambda m, o: m.ExponentialLR(o, gamma=0.9)),
    ("CosineAnnealingLR", "SGD", dict(lr=0.1), lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
    ("LinearLR", "SGD", dict(lr=0.1), lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=6)),
    ("LambdaLR", "RMSprop", dict(lr=0.01), lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.95 ** e)),
    ("OneCycleLR-momentum", "SGD", dict(lr=0.1, momentum=0.9),
     lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=25)),
    ("OneCycleLR-beta1-3phase-linear", "Adam", dict(lr=0.01),
     lambda m, o: m.OneCycleLR(o, max_lr=0.05, total_steps=25, three_phase=True, anneal_strategy="linear")),
]


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum", 0.0) for g in opt.param_groups]


@pytest.mark.parametrize("row", SCHED_ROWS, ids=[r[0] for r in SCHED_ROWS])
def test_scheduler_values_match_torch(row):
    _, name, kw, make = row
    tm, om = models()
    t_opt, o_opt = getattr(torch.optim, name)(tm.parameters(), **kw), getattr(optim, name)(om.parameters(), **kw)
    ts, os_ = make(torch.optim.lr_scheduler, t_opt), make(optim.lr_scheduler, o_opt)
    for _ in range(24):
        assert ts.get_last_lr() == pytest.approx(os_.get_last_lr(), rel=1e-12)
        assert _momenta(t_opt) == pytest.approx(_momenta(o_opt), rel=1e-12)
        t_opt.step(), o_opt.step(), ts.step(), os_.step()


@pytest.mark.parametrize("row", [SCHED_ROWS[6], SCHED_ROWS[7], SCHED_ROWS[3]], ids=lambda r: r[0])
def test_scheduled_training_matches_torch(row):
    """Schedulers change lr / momentum / beta1 graph inputs between Trainer steps, without a rebuild."""
    _, name, kw, make = row
    t_losses, t_params = torch_run(name, kw, None, steps=20, sched=make)
    losses, params = trainer_run(name, kw, None, steps=20, sched=make)
    _close(losses, t_losses, "losses")
    for k, v in t_params.items():
        _close(params[k], v, k)


def test_scheduler_state_dict_roundtrip():
    _, om = models()
    o = optim.SGD(om.parameters(), lr=0.1)
    s = optim.lr_scheduler.MultiStepLR(o, milestones=[3, 6], gamma=0.5)
    for _ in range(4):
        s.step()
    sd = {k: ({str(m): c for m, c in v.items()} if k == "milestones" else v) for k, v in s.state_dict().items()}
    o2 = optim.SGD(om.parameters(), lr=0.1)
    s2 = optim.lr_scheduler.MultiStepLR(o2, milestones=[1], gamma=0.5)
    s2.load_state_dict(sd)  # keys as strings, as after a JSON round trip
    o2.param_groups[0]["lr"] = o.param_groups[0]["lr"]
    for _ in range(4):
        s.step(), s2.step()
        assert s.get_last_lr() == s2.get_last_lr()


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("Adagrad", dict(lr=0.1)), ("Adadelta", dict()), ("Adamax", dict(lr=0.01))])
def test_load_torch_optimizer_state_and_continue(name, kw):
    """An optimizer state dict saved by torch (tensors read without importing torch in onnxkit)."""
    tm, om = models()
    t_opt = getattr(torch.optim, name)(tm.parameters(), **kw)
    for i in range(5):
        x, y = BATCHES[i % 4]
        t_opt.zero_grad()
        torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y)).backward()
        t_opt.step()
    om.load_state_dict(tm.state_dict())
    o_opt = getattr(optim, name)(om.parameters(), **kw)
    o_opt.load_state_dict(t_opt.state_dict())
    tr = ok.Trainer(om, nn.MSELoss(), o_opt)
    for i in range(5, 10):
        x, y = BATCHES[i % 4]
        t_opt.zero_grad()
        tl = torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        t_opt.step()
        _close(tr.step(x, y), tl.item(), f"step {i}")
    for k, v in tm.state_dict().items():
        _close(om.state_dict()[k], v.detach().numpy(), k)


def test_optimizer_state_dict_roundtrip_continues_trajectory():
    _, om = models()
    opt = optim.Adam(om.parameters(), lr=0.01)
    tr = ok.Trainer(om, nn.MSELoss(), opt)
    for i in range(3):
        tr.step(*BATCHES[i])
    sd, params = opt.state_dict(), om.state_dict()
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"] and sd["state"][0]["step"] == 3
    expected = [tr.step(*BATCHES[i % 4]) for i in range(3, 6)]
    _, om2 = models()
    om2.load_state_dict(params)
    opt2 = optim.Adam(om2.parameters(), lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    tr2 = ok.Trainer(om2, nn.MSELoss(), opt2)
    np.testing.assert_array_equal([tr2.step(*BATCHES[i % 4]) for i in range(3, 6)], expected)


@pytest.mark.parametrize("make,error", [
    (lambda p: optim.SGD(p, lr=-1.0), "Invalid learning rate"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), "Invalid alpha value"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD([{"params": p}, {"params": p[:1]}], lr=0.1), "more than one parameter group"),
    (lambda p: optim.lr_scheduler.OneCycleLR(optim.Adagrad(p), max_lr=0.1, total_steps=5), "momentum or beta1"),
])
def test_bad_arguments_raise(make, error):
    _, om = models()
    with pytest.raises(ValueError, match=error):
        make(list(om.parameters()))


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_matches_torch(norm_type):
    tm, om = models()
    x, y = BATCHES[0]
    torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y)).backward()
    nn.MSELoss()(om(ok.tensor(x)), ok.tensor(y)).backward()
    t_total = torch.nn.utils.clip_grad_norm_(tm.parameters(), 0.05, norm_type)
    o_total = clip_grad_norm_(om.parameters(), 0.05, norm_type)
    _close(float(o_total), float(t_total), "total norm")
    for (k, tp), op in zip(tm.named_parameters(), om.parameters()):
        _close(op.grad.numpy(), tp.grad.numpy(), k)
    assert clip_grad_norm is not clip_grad_norm_  # the seed's older name is kept as an alias


def test_clip_grad_value_and_nonfinite_error():
    tm, om = models()
    x, y = BATCHES[1]
    torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y)).backward()
    nn.MSELoss()(om(ok.tensor(x)), ok.tensor(y)).backward()
    torch.nn.utils.clip_grad_value_(tm.parameters(), 0.01)
    clip_grad_value_(om.parameters(), 0.01)
    for (k, tp), op in zip(tm.named_parameters(), om.parameters()):
        _close(op.grad.numpy(), tp.grad.numpy(), k)
    p = nn.Parameter(np.ones(3, np.float32))
    p.grad = ok.tensor(np.array([1.0, np.inf, 0.0], np.float32))
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("clip", [dict(clip_grad_norm=0.05), dict(clip_grad_value=0.02)])
def test_clipping_in_the_training_graph_matches_torch(clip):
    tm, om = models()
    t_opt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    tr = ok.Trainer(om, nn.MSELoss(), optim.SGD(om.parameters(), lr=0.1, momentum=0.9), **clip)
    for i in range(10):
        x, y = BATCHES[i % 4]
        t_opt.zero_grad()
        tl = torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        if "clip_grad_norm" in clip:
            torch.nn.utils.clip_grad_norm_(tm.parameters(), clip["clip_grad_norm"])
        else:
            torch.nn.utils.clip_grad_value_(tm.parameters(), clip["clip_grad_value"])
        t_opt.step()
        _close(tr.step(x, y), tl.item(), f"step {i}")
    for k, v in tm.state_dict().items():
        _close(om.state_dict()[k], v.detach().numpy(), k)


def test_torch_style_loop_with_clipping_and_scheduler_is_one_run_per_step():
    """The seed's loop shape plus clip_grad_norm_ and a scheduler: compiled once, then cache hits."""
    tm, om = models()
    t_opt, o_opt = torch.optim.Adam(tm.parameters(), lr=0.01), optim.Adam(om.parameters(), lr=0.01)
    t_s = torch.optim.lr_scheduler.StepLR(t_opt, 3, 0.5)
    o_s = optim.lr_scheduler.StepLR(o_opt, 3, 0.5)
    loss_fn = nn.MSELoss()
    before = dict(runtime.stats)
    for i in range(8):
        x, y = BATCHES[i % 4]
        t_opt.zero_grad()
        tl = torch.nn.functional.mse_loss(tm(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), 0.1)
        t_opt.step()
        t_s.step()
        o_opt.zero_grad()
        loss = loss_fn(om(ok.tensor(x)), ok.tensor(y))
        loss.backward()
        clip_grad_norm_(om.parameters(), 0.1)
        o_opt.step()
        o_s.step()
        _close(loss.item(), tl.item(), f"step {i}")
    assert runtime.stats["run"] - before.get("run", 0) == 8
    assert runtime.stats["miss"] - before.get("miss", 0) <= 1


def test_values_built_before_an_in_place_update_read_the_old_value():
    """What makes `loss.item()` after `opt.step()` torch-like and one run: tensors built before a
    deferred assignment see the old value (computed in the same run), those built after see the new."""
    w = ok.tensor(np.float32(1.0))
    before = w * 2
    with ok.no_grad():
        w -= 1.0
    runs = runtime.stats["run"]
    assert before.item() == 2.0 and runtime.stats["run"] == runs + 1
    after = w * 3
    assert after.item() == 0.0 and w.item() == 0.0
    with ok.no_grad():
        w += 5.0
    later = w * 2
    assert later.item() == 10.0, "a tensor built after the update reads the new value"


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                     ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01)),
                                     ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
                                     ("Adagrad", dict(lr=0.1)), ("Adadelta", dict()), ("Adamax", dict())])
def test_flat_multi_tensor_update_gives_each_parameter_the_same_bits(name, kw):
    """The training graph updates each dtype's parameters as one flat buffer; the result is bit-identical
    to updating them one by one (the rules are elementwise)."""
    _, om = models()
    opt = getattr(optim, name)(om.parameters(), **kw)
    rng = np.random.default_rng(0)
    items = []
    for p in om.parameters():
        st = opt.ensure_state(p, opt.param_groups[0])
        for slot in opt.slots(opt.param_groups[0]):
            st[slot] = ok.tensor(rng.random(p._shape).astype(p.dtype))
        items.append((p, ok.tensor(rng.standard_normal(p._shape).astype(p.dtype)),
                      {s: st[s] for s in opt.slots(opt.param_groups[0])}))
    h = {k: ok.tensor(np.float64(v)) for k, v in opt.hyper_values(opt.param_groups[0]).items()}
    step = ok.tensor(np.float64(3))
    one_by_one = opt.build_updates(opt.param_groups[0], h, step, items)
    flat = opt.build_updates(opt.param_groups[0], h, step, items, flat=True)
    for (p1, s1), (p2, s2) in zip(one_by_one, flat):
        np.testing.assert_array_equal(p1.numpy(), p2.numpy())
        for slot in s1:
            np.testing.assert_array_equal(s1[slot].numpy(), s2[slot].numpy())
