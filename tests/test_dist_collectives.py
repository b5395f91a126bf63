"""Small collectives on 2 gloo processes: max over ranks, the loggers' peak-memory reduction,
SyncBuffersHook's averaging, and where collective tensors live."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fsm_trainer.dist import collective_device

sys.path.insert(0, str(Path(__file__).parent))
from _torchrun import spawn


def _worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    from fsm_trainer import compile_workflow
    from fsm_trainer.context import RunContext
    from fsm_trainer.dist import all_reduce_max, any_rank
    from fsm_trainer.hooks import logger_base
    from fsm_trainer.hooks.dist import sync_buffers
    from fsm_trainer.logbuffer import LogBuffer

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    got: dict = {"max": all_reduce_max(10 * rank + 3), "any": any_rank(rank == 1), "none": any_rank(False),
                 "device": str(collective_device())}
    # The loggers' average on CUDA also takes the busiest rank's peak memory (faked per rank here).
    torch.cuda.is_available = lambda: True  # type: ignore[assignment]
    torch.cuda.max_memory_allocated = lambda *a, **k: (rank + 1) * 7 * 2**20  # type: ignore[assignment]
    ctx = RunContext(compile_workflow([("train", 1)], max_epochs=1), [[0]])
    buf = LogBuffer()
    buf.update({"loss": float(rank)})
    logger_base._reduced(buf, ctx)(0)
    got.update(memory=ctx.logs.memory_mb, loss=buf.output["loss"])
    bn = torch.nn.BatchNorm1d(3)
    bn.running_mean.fill_(float(rank + 1))
    bn.num_batches_tracked.fill_(5 + 3 * rank)  # averaged, rank 0 would have 6
    sync_buffers(bn)
    got.update(mean=bn.running_mean.clone(), count=bn.num_batches_tracked.clone())
    if rank == 0:
        torch.save(got, out_file)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    """What rank 0 of the 2 processes of ``_worker`` found."""
    tmp_path = tmp_path_factory.mktemp("collectives")
    out = tmp_path / "out.pt"
    spawn(_worker, 2, str(tmp_path / "init"), str(out))
    return torch.load(out, weights_only=True)


def test_max_any_and_peak_memory_over_ranks(spawned):
    got = {k: v for k, v in spawned.items() if k not in ("mean", "count")}
    assert got == {"max": 13, "any": True, "none": False, "device": "cpu", "memory": 14, "loss": 0.5}


def test_sync_buffers_averages_float_buffers(spawned):
    """SyncBuffersHook's sync averages running statistics over ranks and leaves integer counters
    (each rank keeps its own: 5 on rank 0)."""
    assert torch.equal(spawned["mean"], torch.full((3,), 1.5))
    assert int(spawned["count"]) == 5


def test_collective_device_without_a_group_is_the_cpu():
    assert collective_device() == torch.device("cpu")


def _nccl_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    from fsm_trainer.dist import all_reduce_max, all_reduce_mean, any_rank

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=world)
    got = {"device": collective_device().type, "mean": all_reduce_mean({"x": float(rank)})["x"],
           "max": all_reduce_max(rank), "any": any_rank(rank == 0)}
    if rank == 0:
        torch.save(got, out_file)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.gpu
def test_collectives_on_an_nccl_group(tmp_path):
    """NCCL has no CPU tensors: the loggers' and checkpoint hooks' collectives run on CUDA there."""
    import torch.multiprocessing as mp

    world = min(2, torch.cuda.device_count())
    out = tmp_path / "out.pt"
    mp.spawn(_nccl_worker, args=(world, str(tmp_path / "init"), str(out)), nprocs=world, join=True)
    got = torch.load(out, weights_only=True)
    assert got == {"device": "cuda", "mean": (world - 1) / 2, "max": world - 1, "any": True}
