"""DistributedTrainer: data-parallel training with the Trainer's API (what `ok.Trainer(...,
distributed=True)` gives).

Every rank holds the whole model. A step takes the *global* batch (the same arrays on every rank, as
one process would get them; `step_local` takes a rank's own shard instead), runs the gradient stage
of onnxkit.training on the rank's contiguous shard of rows, and writes the gradients straight into
flat fused buffers (bucketed, `bucket_mb` each; the outputs are bound to views of the buckets, so
nothing is copied to fuse them). Each bucket is scaled by the rank's share of the batch (n_r / N,
for a mean-reduced loss) and summed over the ranks with one all-reduce per bucket, all in flight
together; the loss rides in the last bucket. The update stage then runs on every rank with the same
summed gradients, so parameters and optimizer state stay identical without being sent.

At start (and at every rebuild) the parameters, buffers and optimizer state are broadcast from rank
0, and so is the seed. BatchNorm normalises each rank's shard by its own statistics (torch's DDP
default); its running statistics are taken from rank 0 after each step (DDP's broadcast_buffers).
`save` writes the checkpoint on rank 0 only (atomically, onnxkit.checkpoint) and the others wait
for it; `load` reads it on every rank. Dropout masks are drawn per shard, so a model with dropout
follows a different (equally valid) trajectory than one process; without random ops the trajectory
is the one-process one up to float rounding of the gradient sum."""
import math
import os
import time

import numpy as np

from .. import runtime
from ..trainer import Trainer
from .group import DistributedError, init_process_group

__all__ = ["DistributedTrainer"]


class DistributedTrainer(Trainer):
    """DistributedTrainer(model, loss_fn, optimizer, device="cpu", scheduler=None, *, group=None,
    bucket_mb=25, broadcast_buffers=True, intra_op_threads=None, **trainer_options).
    group: a process group from onnxkit.distributed.init_process_group (default: the launcher's).
    intra_op_threads: onnxruntime threads per rank (default: the cores divided by the ranks on this
    node). The other options are the Trainer's."""

    _stages = True  # the Trainer builds the gradient and update stages as well

    def __init__(self, model, loss_fn, optimizer, device="cpu", scheduler=None, *, group=None, bucket_mb=25,
                 broadcast_buffers=True, intra_op_threads=None, distributed=True, **options):
        if (device or "cpu").lower() not in ("cpu", "auto"):
            raise NotImplementedError("DistributedTrainer runs on the CPU provider only (device='cpu' or 'auto')")
        self.group = group if group is not None else init_process_group()
        self.rank, self.world_size = self.group.rank, self.group.world_size
        self.bucket_bytes = max(1, int(bucket_mb * 2 ** 20))
        self.broadcast_buffers = broadcast_buffers
        if intra_op_threads is None:
            intra_op_threads = max(1, (os.cpu_count() or 1) // max(1, self.group.local_world_size))
        self.intra_op_threads = int(intra_op_threads)
        options.setdefault("spinning", False)
        super().__init__(model, loss_fn, optimizer, "cpu", scheduler, **options)
        seed = np.array(self.seed, np.int64)
        self.group.broadcast(seed, 0)
        self.seed = int(seed)
        # wall seconds spent per phase over `timed_steps` steps (bench/distributed.py reads them)
        self.timings, self.timed_steps = {"gradient": 0.0, "allreduce": 0.0, "update": 0.0}, 0

    # ----- graphs ------------------------------------------------------------------------------
    def _session(self, model):
        import onnxruntime as ort
        so = runtime.session_options(self.spinning, threads=self.intra_op_threads)
        return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])

    def _setup_device(self, g):
        import onnxruntime as ort
        self._gsess, self._usess = self._session(g.gradient_model), self._session(g.update_model)
        self._sess = self._gsess
        self._eval_sess = self._loss_sess = None
        g_in = {i.name for i in g.gradient_model.graph.input}
        u_in = {i.name for i in g.update_model.graph.input}
        self._slots = self._state_slots(g, {o.name for m in (g.gradient_model, g.update_model) for o in m.graph.output})
        self._cur = 0
        for s in self._slots:
            self._upload(s, s.get())
        # rank 0's values everywhere: parameters, buffers, optimizer state
        for s in self._slots:
            self.group.broadcast(s.arr[0], 0)

        # flat gradient buckets; the loss is the last element of the last bucket
        g_outs = {o.name: o for o in g.gradient_model.graph.output}
        loss_dtype = self._output_dtype(g.gradient_model, "loss")
        pieces = [(f"grads/{k}", p.shape, p.dtype) for name, k, p in g.params if k in g.trainable]
        pieces.append(("loss", (), loss_dtype))
        self._buckets, views, cur, size = [], {}, [], 0

        def close():
            nonlocal cur, size
            if cur:
                dt = cur[0][2]
                flat = np.zeros(sum(int(np.prod(sh)) for _, sh, _ in cur), dt)
                off = 0
                for name, sh, _ in cur:
                    n = int(np.prod(sh))
                    views[name] = flat[off:off + n].reshape(sh)
                    off += n
                self._buckets.append(flat)
            cur, size = [], 0

        for name, sh, dt in pieces:
            nbytes = int(np.prod(sh)) * np.dtype(dt).itemsize
            if cur and (cur[0][2] != dt or size + nbytes > self.bucket_bytes):
                close()
            cur.append((name, sh, np.dtype(dt)))
            size += nbytes
        close()
        assert all(n in g_outs for n in views), "gradient stage outputs missing"
        self._grad_views = views
        self._loss_view = views["loss"]
        self._grad_ov = {n: ort.OrtValue.ortvalue_from_numpy(v) for n, v in views.items()}

        self._scalars = {name: np.zeros((), np.float64) for name, _, _ in g.hparams}
        self._scalars["step"] = np.zeros((), np.int64)
        self._scalars["seed"] = np.zeros((), np.int64)
        self._gbind = [self._gsess.io_binding(), self._gsess.io_binding()]
        self._ubind = [self._usess.io_binding(), self._usess.io_binding()]
        self._bindings = self._gbind
        for j in (0, 1):
            gb, ub = self._gbind[j], self._ubind[j]
            for name, arr in self._scalars.items():
                ov = ort.OrtValue.ortvalue_from_numpy(arr)
                if name in g_in:
                    gb.bind_ortvalue_input(name, ov)
                if name in u_in:
                    ub.bind_ortvalue_input(name, ov)
            for name, ov in self._grad_ov.items():
                gb.bind_ortvalue_output(name, ov)
                if name in u_in:
                    ub.bind_ortvalue_input(name, ov)
            for s in self._slots:
                ov_in = s.ov[j] if s.out else s.ov[0]
                if s.name in g_in:
                    gb.bind_ortvalue_input(s.name, ov_in)
                if s.name in u_in:
                    ub.bind_ortvalue_input(s.name, ov_in)
                if s.out and s.out in g_outs:
                    gb.bind_ortvalue_output(s.out, s.ov[1 - j])
                elif s.out:
                    ub.bind_ortvalue_output(s.out, s.ov[1 - j])
        self._buffer_slots = [s for s in self._slots if s.out and s.out in g_outs]
        self._hp_index = [(self._scalars[name], gi, key) for name, gi, key in g.hparams]
        self._data_names = g.data + [g.target]
        self._bound = [[None] * len(self._data_names) for _ in self._gbind]

    # ----- one step ----------------------------------------------------------------------------
    def _mean_reduced(self):
        return getattr(self.loss_fn, "reduction", "mean") not in ("sum",)

    def shard(self, n):
        """The rows [start, stop) of a global batch of n rows that this rank trains on."""
        return self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size

    def step(self, *inputs_and_target):
        """One data-parallel step on a global batch (the same arrays on every rank; the last argument
        is the target): this rank computes gradients on its shard of rows. Returns the global loss."""
        if len(inputs_and_target) < 2:
            raise TypeError("step(*inputs, target) needs at least one input and the target")
        arrays = [self._batch(a) for a in inputs_and_target]
        n = len(arrays[-1])
        if any(len(a) != n for a in arrays):
            raise ValueError(f"inputs and target must have the same number of rows, got {[len(a) for a in arrays]}")
        lo, hi = self.shard(n)
        local = [np.ascontiguousarray(a[lo:hi]) for a in arrays]
        return self._step(local, (hi - lo) / n if self._mean_reduced() else 1.0, arrays)

    def step_local(self, *inputs_and_target, global_size=None):
        """One data-parallel step on this rank's own shard (e.g. from a DistributedSampler). The shards
        are weighted by their sizes; `global_size` (the sum of the shard sizes) saves a small
        all-reduce when known."""
        arrays = [self._batch(a) for a in inputs_and_target]
        n = len(arrays[-1])
        if global_size is None:
            total = np.array([n], np.float64)
            self.group.all_reduce_many([total])
            global_size = int(total[0])
        return self._step(arrays, n / global_size if self._mean_reduced() else 1.0, arrays)

    def _step(self, local, weight, example):
        ex = local if len(local[-1]) else [a[:1] for a in example]  # an empty shard builds from any row
        leaves, g, step = self._prepare_step(ex)
        j = self._cur
        t0 = time.perf_counter()
        if len(local[-1]):
            gb = self._gbind[j]
            self._bind_batch(gb, self._bound[j], local, g, step)
            self._gsess.run_with_iobinding(gb)
            scale = weight
        else:  # no rows here: contribute zeros, keep this rank's buffers
            scale = 0.0
            for s in self._buffer_slots:
                np.copyto(s.arr[1 - j], s.arr[j])

        def prepare(i, buf):
            if scale == 0.0:
                buf.fill(0)
            elif scale != 1.0:
                buf *= buf.dtype.type(scale)

        t1 = time.perf_counter()
        self.group.all_reduce_many(self._buckets, prepare)
        t2 = time.perf_counter()
        loss = float(self._loss_view)
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss} at step {step}; the parameters and optimizer state keep "
                                     "their values from before this step")
        self._usess.run_with_iobinding(self._ubind[j])
        t3 = time.perf_counter()
        for key, dt in (("gradient", t1 - t0), ("allreduce", t2 - t1), ("update", t3 - t2)):
            self.timings[key] += dt
        self.timed_steps += 1
        self._cur ^= 1
        for s, leaf in zip(self._slots, leaves):
            if s.out:
                leaf._value = s.seen = s.arr[self._cur]
        if self.broadcast_buffers:
            for s in self._buffer_slots:
                self.group.broadcast(s.arr[self._cur], 0)
        self.step_count = step
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        return loss

    # ----- the rest of the Trainer -------------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation=None, verbose=True):
        """Trainer.fit over the global data (the same arrays on every rank; `batch_size` is the
        global batch); progress is printed by rank 0 only."""
        return super().fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle, validation=validation,
                           verbose=verbose and self.rank == 0)

    def save(self, path):
        """Rank 0 writes the checkpoint (atomically); every rank returns once it is on disk."""
        self.sync()
        status = np.zeros((), np.int64)
        error = None
        if self.rank == 0:
            try:
                super().save(path)
            except Exception as e:  # tell the others instead of leaving them at the barrier
                status[...] = 1
                error = e
        self.group.broadcast(status, 0)
        if error is not None:
            raise error
        if int(status):
            raise DistributedError(f"rank 0 failed to write the checkpoint {path}")

    def load(self, path):
        """Every rank reads the checkpoint (the path must be visible to all ranks)."""
        super().load(path)
        if self._graph is not None:
            self._refresh()

    def allreduce_ms_per_step(self):
        """Mean wall time of the gradient all-reduce per step so far, in milliseconds."""
        return 1000.0 * self.timings["allreduce"] / max(1, self.timed_steps)

    def reset_timings(self):
        for key in self.timings:
            self.timings[key] = 0.0
        self.timed_steps = 0
