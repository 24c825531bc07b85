"""onnxkit.distributed: data-parallel training over local MPI ranks (mpiexec from the mpich wheel,
loopback only; also torchrun + gloo) gives the one-process trajectory (step, step_local with
DistributedSampler shards, fit, checkpoint resume); BatchNorm is per rank; a killed rank fails the
job at once and a hung one makes the others time out with a clear error. Each job runs in its own
session, its process group killed in a finally; every launch has a wall-clock limit.

Tolerance: losses and final weights of 2 (and 4) ranks vs one process on the same global batch agree
to rtol 1e-4, atol 1e-5 (the float32 contract); the only difference is the rounding of the gradient
sum over the shards (sum_r n_r/N * g_r instead of one mean).

This file is also the ranks' program: `python tests/test_distributed.py worker OUT_DIR`."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CONFIGS = [("mlp", "sgd"), ("mlp", "adam"), ("lenet", "sgd"), ("lenet", "adam")]
STEPS, BATCH, SAVE_AT = 6, 16, 3
TIMEOUT = 20  # seconds each collective may take before the ranks give up
# loopback only: hydra's control sockets on lo, MPICH's UCX netmod on shared memory and tcp over lo
# (its ofi netmod with FI_PROVIDER=tcp also runs, but there MPI_Abort hangs after a peer stops)
LOOPBACK = {"HYDRA_IFACE": "lo", "UCX_NET_DEVICES": "lo", "UCX_TLS": "self,sm,tcp", "OMP_NUM_THREADS": "1"}


def _problem(kind, opt_name, seed):
    """(model, loss, optimizer, global batches) -- the model initialised from `seed` (the ranks use
    different seeds: rank 0's weights must reach every rank)."""
    import onnxkit as ok
    from onnxkit import nn, optim
    from models.lenet import LeNet5
    from models.mlp import seed_mlp
    ok.manual_seed(seed)
    rng = np.random.default_rng(123)
    if kind == "bn":  # BatchNorm: per-rank batch statistics
        model, loss = nn.Sequential(nn.Linear(1000, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)), nn.MSELoss()
        data = [(rng.standard_normal((BATCH, 1000)).astype(np.float32) + 1,
                 rng.standard_normal((BATCH, 10)).astype(np.float32)) for _ in range(STEPS)]
    elif kind == "mlp":
        model, loss = seed_mlp(), nn.MSELoss()
        data = [(rng.standard_normal((BATCH, 1000)).astype(np.float32),
                 rng.standard_normal((BATCH, 10)).astype(np.float32)) for _ in range(STEPS)]
    else:
        model, loss = LeNet5(), nn.CrossEntropyLoss()
        data = [(rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32),
                 rng.integers(0, 10, BATCH).astype(np.int64)) for _ in range(STEPS)]
    if opt_name == "sgd":
        opt = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    else:
        opt = optim.Adam(model.parameters(), lr=1e-3)
    return model, loss, opt, data


def _run(trainer, data, ckpt):
    losses = []
    for i, (x, y) in enumerate(data):
        losses.append(trainer.step(x, y))
        if i + 1 == SAVE_AT and ckpt:
            trainer.save(ckpt)
    return np.array(losses)


def worker(out_dir, configs=CONFIGS, die_at=None, hang_at=None, timeout=TIMEOUT):
    """The ranks' program: every config's trajectory on the global batches, saved by rank 0. The
    last rank kills itself (die_at) or stops answering (hang_at) before that step. Modes after the
    optimizer name: "local" feeds each rank its DistributedSampler shard through step_local;
    "resume" loads the checkpoint the plain run wrote at SAVE_AT and runs the remaining steps."""
    import onnxkit as ok
    import onnxkit.distributed as dist
    g = dist.init_process_group(timeout=timeout)
    for kind, opt_name, *mode in configs:
        model, loss, opt, data = _problem(kind, opt_name, seed=0 if g.rank == 0 else 100 + g.rank)
        # LeNet-5's 0.24 MB of gradients in 50 kB buckets (several all-reduces per step), the rest in one
        trainer = ok.Trainer(model, loss, opt, distributed=True, seed=7 if g.rank == 0 else 8, intra_op_threads=1,
                             bucket_mb=0.05 if kind == "lenet" else 25)
        if kind == "lenet":  # build() is collective (it broadcasts rank 0's values): on every rank
            trainer.build(*data[0])
            assert len(trainer._buckets) >= 3, len(trainer._buckets)
        name = "-".join([kind, opt_name] + mode)
        ckpt = os.path.join(out_dir, f"{kind}-{opt_name}.ckpt")
        losses, start = [], 0
        if mode == ["resume"]:
            trainer.load(ckpt)
            start = SAVE_AT
        if mode == ["fit"]:  # fit over the concatenated batches: the global shuffle comes from rank 0's seed
            xs, ys = np.concatenate([x for x, _ in data]), np.concatenate([y for _, y in data])
            losses = trainer.fit(xs, ys, epochs=2, batch_size=BATCH, verbose=False, validation=(xs, ys))["loss"]
            data = []
        for i, (x, y) in enumerate(data[start:], start):
            if die_at is not None and i == die_at and g.rank == g.world_size - 1:
                os.kill(os.getpid(), signal.SIGKILL)
            if hang_at is not None and i == hang_at and g.rank == g.world_size - 1:
                time.sleep(3600)
            if mode == ["local"]:
                idx = list(dist.DistributedSampler(len(y), shuffle=False))
                losses.append(trainer.step_local(x[idx], y[idx]))
            else:
                losses.append(trainer.step(x, y))
            if i + 1 == SAVE_AT and not mode:
                trainer.save(ckpt)
        sd = model.state_dict()
        if g.rank == 0:
            np.savez(os.path.join(out_dir, f"{name}.npz"), losses=np.array(losses),
                     world=np.array(f"{g.backend}/{g.world_size}"), **sd)
        # every rank must hold rank 0's weights: compare a checksum over the group
        check = np.array([float(np.sum(np.abs(v), dtype=np.float64)) for v in sd.values()], np.float64)
        mine = check.copy()
        dist.broadcast(check, 0)
        if not np.array_equal(check, mine):
            raise AssertionError(f"rank {g.rank}: weights differ from rank 0's")
    dist.barrier()
    dist.destroy_process_group()


# ----- launching ---------------------------------------------------------------------------------
def _mpiexec():
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return exe


def _free_port():
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def launch(n, args, timeout=90, launcher="mpiexec"):
    """Run `python tests/test_distributed.py ARGS` on n local ranks; returns (rc, output, seconds).
    The whole process group is killed when done or on timeout."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **LOOPBACK)
    if launcher == "mpiexec":
        cmd = [_mpiexec(), "-n", str(n), "-hosts", "127.0.0.1", sys.executable, os.path.abspath(__file__)]
    else:  # torchrun's environment -> torch.distributed gloo
        env.update(GLOO_SOCKET_IFNAME="lo")
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={n}", "--master-addr=127.0.0.1",
               f"--master-port={_free_port()}", os.path.abspath(__file__)]
    cmd += list(args)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out = f"(killed after {timeout} s)"
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    return p.returncode, out, time.monotonic() - t0


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--die", type=int)
    ap.add_argument("--hang", type=int)
    ap.add_argument("--timeout", type=float, default=TIMEOUT)
    ap.add_argument("--configs", type=int, default=len(CONFIGS))
    ap.add_argument("--extras", action="store_true", help="also BatchNorm, step_local and resume runs")
    a = ap.parse_args(sys.argv[2:])
    extras = [("bn", "sgd"), ("mlp", "sgd", "local"), ("mlp", "sgd", "resume"), ("mlp", "sgd", "fit")] \
        if a.extras else []
    worker(a.out, CONFIGS[:a.configs] + extras, die_at=a.die, hang_at=a.hang, timeout=a.timeout)
    sys.exit(0)

# ----- tests -------------------------------------------------------------------------------------
import pytest  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (_mpiexec() and __import__("importlib").util.find_spec("mpi4py")),
    reason="needs the distributed extra (mpi4py + mpich): pip install -e '.[distributed]'")


def _reference(kind, opt_name, ckpt):
    import onnxkit as ok
    model, loss, opt, data = _problem(kind, opt_name, seed=0)
    trainer = ok.Trainer(model, loss, opt, device="cpu", seed=7)
    losses = _run(trainer, data, ckpt)
    return losses, model.state_dict()


@pytest.fixture(scope="module")
def two_ranks():
    out = tempfile.mkdtemp(prefix="okdist-")
    try:
        rc, log, secs = launch(2, ["worker", out, "--extras"])
        assert rc == 0, log
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("kind,opt_name", CONFIGS)
def test_two_ranks_match_one_process(two_ranks, kind, opt_name, tmp_path):
    ref_losses, ref_sd = _reference(kind, opt_name, str(tmp_path / "ref.ckpt"))
    got = np.load(os.path.join(two_ranks, f"{kind}-{opt_name}.npz"))
    assert str(got["world"]) == "mpi/2"
    np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-4, atol=1e-5)
    assert ref_losses[-1] != ref_losses[0]
    for k, v in ref_sd.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=k)
    # rank 0's checkpoint at SAVE_AT holds the one-process state at that step
    from onnxkit import checkpoint
    dist_t, dist_meta = checkpoint.load(os.path.join(two_ranks, f"{kind}-{opt_name}.ckpt"))
    ref_t, ref_meta = checkpoint.load(str(tmp_path / "ref.ckpt"))
    assert dist_meta["step"] == ref_meta["step"] == SAVE_AT
    assert sorted(dist_t) == sorted(ref_t)
    for k in ref_t:
        np.testing.assert_allclose(dist_t[k], ref_t[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_local_shards_from_distributed_sampler_match_one_process(two_ranks):
    """step_local on each rank's DistributedSampler shard (rows r::2) is the global step too."""
    ref_losses, ref_sd = _reference("mlp", "sgd", None)
    got = np.load(os.path.join(two_ranks, "mlp-sgd-local.npz"))
    np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-4, atol=1e-5)
    for k, v in ref_sd.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_fit_matches_one_process(two_ranks):
    """fit() on the global data: the same shuffled global batches (rank 0's seed), epoch losses
    and weights as one process's fit."""
    import onnxkit as ok
    model, loss, opt, data = _problem("mlp", "sgd", seed=0)
    xs, ys = np.concatenate([x for x, _ in data]), np.concatenate([y for _, y in data])
    hist = ok.Trainer(model, loss, opt, device="cpu", seed=7).fit(xs, ys, epochs=2, batch_size=BATCH, verbose=False)
    got = np.load(os.path.join(two_ranks, "mlp-sgd-fit.npz"))
    np.testing.assert_allclose(got["losses"], hist["loss"], rtol=1e-4, atol=1e-5)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_resume_from_rank0_checkpoint_on_every_rank(two_ranks):
    """Every rank loads rank 0's checkpoint (into differently initialised models and seeds) and the
    run continues exactly where the uninterrupted one went."""
    full = np.load(os.path.join(two_ranks, "mlp-sgd.npz"))
    resumed = np.load(os.path.join(two_ranks, "mlp-sgd-resume.npz"))
    np.testing.assert_allclose(resumed["losses"], full["losses"][SAVE_AT:], rtol=1e-6, atol=1e-7)
    for k in ("0.weight", "0.bias", "2.weight", "2.bias"):
        np.testing.assert_allclose(resumed[k], full[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_batchnorm_normalises_each_shard(two_ranks):
    """BatchNorm uses each rank's own shard statistics (torch DDP's default): the first step's loss
    is the mean of the half-batch losses; the running statistics are rank 0's on every rank (the
    worker checks that all ranks end with equal state)."""
    import onnxkit as ok
    model, loss, _, data = _problem("bn", "sgd", seed=0)
    model.train()
    x, y = data[0]
    halves = [float(loss(model(ok.tensor(x[s])), ok.tensor(y[s])).numpy()) for s in (slice(0, 8), slice(8, 16))]
    whole = float(loss(model(ok.tensor(x)), ok.tensor(y)).numpy())
    got = np.load(os.path.join(two_ranks, "bn-sgd.npz"))
    np.testing.assert_allclose(got["losses"][0], np.mean(halves), rtol=1e-4, atol=1e-5)
    assert abs(np.mean(halves) - whole) > 1e-4  # per-shard statistics are visible in the loss
    assert np.all(np.isfinite(got["losses"])) and np.all(np.isfinite(got["1.running_var"]))
    assert int(got["1.num_batches_tracked"]) == STEPS


def test_four_ranks_match_one_process(tmp_path):
    """4 ranks (oversubscribing 2 cores, so the smallest model): the same trajectory."""
    rc, log, secs = launch(4, ["worker", str(tmp_path), "--configs", "2"], timeout=120)
    assert rc == 0, log
    for kind, opt_name in CONFIGS[:2]:
        ref_losses, ref_sd = _reference(kind, opt_name, None)
        got = np.load(tmp_path / f"{kind}-{opt_name}.npz")
        assert str(got["world"]) == "mpi/4"
        np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-4, atol=1e-5)
        for k, v in ref_sd.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_torchrun_gloo_backend_matches_one_process(tmp_path):
    """The same worker under torchrun picks torch.distributed's gloo backend from RANK/WORLD_SIZE."""
    pytest.importorskip("torch", reason="torch is the test oracle: pip install torch==2.13.0 (test extra)")
    rc, log, secs = launch(2, ["worker", str(tmp_path), "--configs", "2"], timeout=120, launcher="torchrun")
    assert rc == 0, log
    for kind, opt_name in CONFIGS[:2]:
        ref_losses, ref_sd = _reference(kind, opt_name, None)
        got = np.load(tmp_path / f"{kind}-{opt_name}.npz")
        assert str(got["world"]) == "gloo/2"
        np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-4, atol=1e-5)
        for k, v in ref_sd.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_killed_rank_fails_the_job_quickly(tmp_path):
    """mpiexec sees the dead rank and ends the others at once, naming the signal."""
    rc, log, secs = launch(2, ["worker", str(tmp_path), "--die", "2", "--configs", "1"], timeout=60)
    assert rc != 0, log
    assert secs < 30, (secs, log)
    assert "BAD TERMINATION" in log and "signal 9" in log, log


def test_hung_rank_times_out_with_a_clear_error(tmp_path):
    """A rank that stops answering (alive, so the launcher sees nothing): the others' collective
    gives up after the timeout, says why, and the job ends."""
    rc, log, secs = launch(2, ["worker", str(tmp_path), "--hang", "2", "--configs", "1", "--timeout", "3"],
                           timeout=60)
    assert rc != 0, log
    assert secs < 30, (secs, log)
    assert "rank 0/2: all-reduce of" in log and "did not complete within 3 s" in log, log


def test_single_process_group_matches_trainer():
    """Without a launcher the group has one rank and the staged step equals the one-graph step."""
    from onnxkit.distributed.group import _Single
    from onnxkit.distributed.trainer import DistributedTrainer
    g = _Single(5.0)
    model, loss, opt, data = _problem("mlp", "adam", seed=0)
    t = DistributedTrainer(model, loss, opt, group=g, seed=7, intra_op_threads=1)
    losses = _run(t, data[:3], None)
    ref_losses, ref_sd = _reference("mlp", "adam", None)
    np.testing.assert_allclose(losses, ref_losses[:3], rtol=1e-5, atol=1e-6)
    assert t.allreduce_ms_per_step() >= 0


def test_distributed_sampler_shards_and_shuffles():
    from onnxkit.distributed import DistributedSampler
    for n, w, drop in [(10, 3, False), (10, 3, True), (8, 2, False), (2, 4, False)]:
        samplers = [DistributedSampler(n, num_replicas=w, rank=r, seed=5, drop_last=drop) for r in range(w)]
        for s in samplers:
            s.set_epoch(1)
        parts = [list(s) for s in samplers]
        assert len({len(p) for p in parts}) == 1 and len(parts[0]) == len(samplers[0])
        flat = sorted(i for p in parts for i in p)
        if drop:
            assert len(set(flat)) == len(flat) == (n // w) * w
        else:
            assert set(flat) == set(range(n)) and len(flat) == samplers[0].total_size
    a = DistributedSampler(100, num_replicas=2, rank=0, seed=1)
    e0 = list(a)
    a.set_epoch(1)
    assert list(a) != e0 and sorted(a) != list(range(0, 100, 2))
    with pytest.raises(ValueError):
        DistributedSampler(4, num_replicas=2, rank=2)
