"""onnxkit.distributed: data-parallel training over the ranks a launcher started (the optional extra
`onnxkit[distributed]`: mpi4py with the mpich wheel; torch.distributed's gloo under torchrun works
too when torch is installed). See docs/distributed.md.

    mpiexec -n 2 python train.py          # or: torchrun --nproc-per-node 2 train.py

    import onnxkit as ok
    trainer = ok.Trainer(model, loss_fn, opt, distributed=True)   # a DistributedTrainer
    trainer.fit(x, y, batch_size=64)                              # 64 = the global batch
"""
from .group import (DEFAULT_TIMEOUT, DistributedError, all_reduce, barrier, broadcast, destroy_process_group,
                    get_backend, get_rank, get_world_size, group, init_process_group, is_initialized)
from .sampler import DistributedSampler


def __getattr__(name):
    if name == "DistributedTrainer":  # imports onnxruntime: on first use
        from .trainer import DistributedTrainer
        return DistributedTrainer
    raise AttributeError(f"module 'onnxkit.distributed' has no attribute {name!r}")


__all__ = ["DistributedError", "DistributedSampler", "DistributedTrainer", "DEFAULT_TIMEOUT", "all_reduce", "barrier",
           "broadcast", "destroy_process_group", "get_backend", "get_rank", "get_world_size", "group",
           "init_process_group", "is_initialized"]
