"""Process groups on existing engines: MPI through mpi4py (the `onnxkit[distributed]` extra, with the
`mpich` wheel) or torch.distributed's gloo backend (torchrun's environment; torch is imported only
here, and only when that backend is chosen). Every collective works in place on a numpy array and
is bounded by a timeout: a rank that died or hangs makes the others raise `DistributedError` naming
the operation, instead of waiting forever."""
import atexit
import datetime
import os
import sys
import time

import numpy as np

__all__ = ["DistributedError", "init_process_group", "destroy_process_group", "is_initialized", "get_rank",
           "get_world_size", "get_backend", "group", "barrier", "all_reduce", "broadcast", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = float(os.environ.get("ONNXKIT_DIST_TIMEOUT", "300"))
_MPI_ENV = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "HYDRA_CONTROL_FD")
_group = None


class DistributedError(RuntimeError):
    """A collective failed or did not complete within the timeout (a peer died, hung or left)."""


class _Single:
    """World of one process: collectives are no-ops (so the same script runs without a launcher)."""
    backend, rank, world_size, local_world_size = "single", 0, 1, 1

    def __init__(self, timeout):
        self.timeout = timeout

    def all_reduce_many(self, bufs, prepare=None):
        for i, b in enumerate(bufs):
            if prepare is not None:
                prepare(i, b)

    def broadcast(self, buf, src=0):
        return buf

    def barrier(self):
        pass

    def abort(self, code=1):
        os._exit(code)

    def close(self):
        pass


class _MPI:
    """MPI_COMM_WORLD through mpi4py. Nonblocking collectives polled with Test until a deadline."""
    backend = "mpi"

    def __init__(self, timeout):
        try:
            from mpi4py import MPI
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise ImportError("the MPI backend needs mpi4py and an MPI library: pip install 'onnxkit[distributed]' "
                              "(mpi4py + the mpich wheel)") from e
        self.MPI, self.timeout = MPI, timeout
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_world_size = local.Get_size()
        local.Free()
        self._failed = False
        atexit.register(self._atexit)

    def _wait(self, reqs, what):
        """Wait for the requests, raising DistributedError after `timeout` seconds."""
        Test = self.MPI.Request.Testall
        if Test(reqs):
            return
        now = time.monotonic
        start = now()
        deadline, spin_until = start + self.timeout, start + 0.02
        while not Test(reqs):
            t = now()
            if t > spin_until:  # busy-poll for 20 ms (as MPI's own Wait does), then poll every 0.5 ms
                time.sleep(0.0005)
                if t > deadline:
                    self._failed = True
                    msg = (f"onnxkit.distributed: rank {self.rank}/{self.world_size}: {what} did not complete within "
                           f"{self.timeout:g} s; another rank has probably died or hung (aborting the job)")
                    sys.stderr.write(msg + "\n")
                    sys.stderr.flush()
                    raise DistributedError(msg)

    def all_reduce_many(self, bufs, prepare=None):
        """Sum each buffer over the ranks in place; `prepare(i, buf)` runs just before buffer i's
        reduction starts, so it overlaps with the reductions already in flight."""
        reqs = []
        for i, b in enumerate(bufs):
            if prepare is not None:
                prepare(i, b)
            reqs.append(self.comm.Iallreduce(self.MPI.IN_PLACE, b, op=self.MPI.SUM))
        self._wait(reqs, f"all-reduce of {sum(b.nbytes for b in bufs)} bytes")

    def broadcast(self, buf, src=0):
        self._wait([self.comm.Ibcast(buf, root=src)], f"broadcast of {buf.nbytes} bytes from rank {src}")
        return buf

    def barrier(self):
        self._wait([self.comm.Ibarrier()], "barrier")

    def abort(self, code=1):
        self.comm.Abort(code)

    def close(self):
        if not self._failed:
            self.comm.Free()

    def _atexit(self):
        # after a failed collective MPI_Finalize would wait for the dead peer: end the job instead
        if self._failed:
            sys.stderr.flush()
            self.comm.Abort(1)


class _Gloo:
    """torch.distributed with the gloo backend, initialised from torchrun's environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT). numpy buffers are shared with torch, not copied."""
    backend = "gloo"

    def __init__(self, timeout):
        import torch
        import torch.distributed as dist
        self.torch, self.dist, self.timeout = torch, dist, timeout
        if not dist.is_initialized():
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))

    def _run(self, what, fn):
        try:
            return fn()
        except RuntimeError as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            msg = (f"onnxkit.distributed: rank {self.rank}/{self.world_size}: {what} failed ({first}); "
                   "another rank has probably died or hung")
            sys.stderr.write(msg + "\n")
            raise DistributedError(msg) from e

    def all_reduce_many(self, bufs, prepare=None):
        def go():
            works = []
            for i, b in enumerate(bufs):
                if prepare is not None:
                    prepare(i, b)
                works.append(self.dist.all_reduce(self.torch.from_numpy(b), async_op=True))
            for w in works:
                w.wait()
        self._run(f"all-reduce of {sum(b.nbytes for b in bufs)} bytes", go)

    def broadcast(self, buf, src=0):
        t = self.torch.from_numpy(buf.reshape(-1) if buf.ndim == 0 else buf)
        self._run(f"broadcast from rank {src}", lambda: self.dist.broadcast(t, src=src))
        return buf

    def barrier(self):
        self._run("barrier", lambda: self.dist.barrier())

    def abort(self, code=1):
        os._exit(code)

    def close(self):
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def _detect():
    if any(k in os.environ for k in _MPI_ENV):
        return "mpi"
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return "gloo"
    return "single"


def init_process_group(backend=None, timeout=None):
    """Join the job the launcher started and return the process group (also kept as the default).
    backend: "mpi" (mpiexec / mpirun), "gloo" (torchrun: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
    "single" (no launcher: one process) or None to pick from the environment. `timeout` (seconds,
    default $ONNXKIT_DIST_TIMEOUT or 300) bounds every collective. Calling it again returns the
    existing group."""
    global _group
    if _group is not None:
        return _group
    backend = backend or os.environ.get("ONNXKIT_DIST_BACKEND") or _detect()
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    kinds = {"mpi": _MPI, "gloo": _Gloo, "single": _Single}
    if backend not in kinds:
        raise ValueError(f"backend must be one of {sorted(kinds)}, got {backend!r}")
    _group = kinds[backend](timeout)
    return _group


def destroy_process_group():
    """Leave the group (the default group is created again by the next init_process_group)."""
    global _group
    if _group is not None:
        _group.close()
        _group = None


def is_initialized():
    return _group is not None


def group():
    """The default process group, initialised from the environment when needed."""
    return init_process_group()


def get_rank():
    return group().rank


def get_world_size():
    return group().world_size


def get_backend():
    return group().backend


def barrier():
    group().barrier()


def all_reduce(array, op="sum"):
    """Sum a C-contiguous numpy array over all ranks, in place; returns it."""
    if op != "sum":
        raise ValueError("only op='sum' is supported")
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous):
        raise TypeError("all_reduce works in place on a C-contiguous numpy array")
    group().all_reduce_many([array.reshape(-1)])
    return array


def broadcast(array, src=0):
    """Overwrite a C-contiguous numpy array with rank `src`'s values, in place; returns it."""
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous):
        raise TypeError("broadcast works in place on a C-contiguous numpy array")
    group().broadcast(array, src)
    return array
