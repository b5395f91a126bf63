"""The process group and collectives: torchrun's environment, rank queries, cross-rank
averages, object broadcast/gather and result collection.

Launch with torchrun, which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_dist` reads them (``env://``) and picks ``nccl`` on GPU, ``gloo``
on CPU. Everything here also works, as a no-op or identity, in a single process without a
process group, so the same code runs both ways.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from fsm_trainer.errors import DistError


def is_dist() -> bool:
    """Whether a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_dist_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    if is_dist():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process)."""
    return get_dist_info()[0] == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_dist():
        dist.barrier()


def init_dist(launcher: str = "pytorch", backend: str | None = None, timeout_s: float = 1800) -> tuple[int, int]:
    """Initialise the default process group from torchrun's environment.

    Args:
        launcher: only ``"pytorch"`` (torchrun / ``torch.distributed.run``) is supported.
        backend: ``nccl`` when CUDA is available, else ``gloo``, unless given (``nccl``
            without CUDA falls back to ``gloo`` with a warning).
        timeout_s: collective timeout.

    Returns:
        ``(rank, world_size)``.

    Raises:
        DistError: an unknown launcher, or the torchrun variables are missing.
    """
    if launcher != "pytorch":
        msg = f"unknown launcher {launcher!r}; allowed: 'pytorch' (torchrun)"
        raise DistError(msg)
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        msg = f"launcher 'pytorch' needs torchrun's environment; missing {', '.join(missing)} (start with torchrun)"
        raise DistError(msg)
    if is_dist():
        return get_dist_info()
    use_cuda = torch.cuda.is_available()
    if backend == "nccl" and not use_cuda:
        # mmcv's configs all say dist_params = dict(backend="nccl"); on CPU that cannot work.
        logging.getLogger("fsm_trainer").warning("backend 'nccl' needs CUDA, which is not available: using 'gloo'")
        backend = "gloo"
    backend = backend or ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(seconds=timeout_s)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is not None and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # Workers share torchrun's store across restarts, and the process group's keys of the
        # failed attempt are still in it: a restarted gloo group reads the dead workers'
        # addresses and fails to connect. A prefix per attempt keeps the attempts apart.
        world = int(os.environ["WORLD_SIZE"])
        # torch.distributed re-exports its stores from torch._C without marking them public.
        agent = dist.TCPStore(  # type: ignore[attr-defined]
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False, timeout=timeout,
        )
        store = dist.PrefixStore(f"fsm_trainer/attempt_{restart}", agent)  # type: ignore[attr-defined]
        dist.init_process_group(backend, store=store, rank=int(os.environ["RANK"]), world_size=world, timeout=timeout)
    else:
        dist.init_process_group(backend, init_method="env://", timeout=timeout)
    return get_dist_info()


def destroy_dist() -> None:
    """Leave the default process group together with the other ranks (no-op without one).

    Objects left in reference cycles that still hold the group (a sharded or wrapped model, a
    finished run's context) are freed first, so the group is destroyed here, its threads joined
    while the interpreter is whole, not during interpreter shutdown (where a gloo thread that
    touches a tensor can abort the process). Then every rank waits for the others, so that none
    closes its connections while another still uses them, and the group is destroyed.
    """
    if not is_dist():
        return
    gc.collect()
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


def collective_device() -> torch.device:
    """Where small tensors for a collective must live: CUDA's current device when the default
    group's backend is NCCL only (NCCL has no CPU tensors), else the CPU."""
    backend = str(dist.get_backend()) if is_dist() else "gloo"
    if "nccl" in backend and "gloo" not in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(values: Mapping[str, float]) -> dict[str, float]:
    """Average scalar values over ranks (every rank must call it with the same keys)."""
    if not is_dist() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def interleave_results(parts: Sequence[Sequence[Any]], size: int) -> list[Any]:
    """Undo a DistributedSampler's split: rank r got samples r, r+W, r+2W, ...

    The sampler pads the dataset to a multiple of the world size, so the padded tail is cut
    at ``size`` (the dataset length).

    >>> interleave_results([[0, 2, 4], [1, 3, 0]], size=5)
    [0, 1, 2, 3, 4]
    """
    ordered: list[Any] = []
    for group in zip(*parts, strict=False):
        ordered.extend(group)
    return ordered[:size]


def collect_results(results: Sequence[Any], size: int) -> list[Any] | None:
    """Gather per-sample results from every rank to rank 0 in dataset order.

    Returns the ordered list on rank 0, ``None`` on other ranks; in a single process, the
    first ``size`` results.
    """
    if not is_dist():
        return list(results)[:size]
    rank, world = get_dist_info()
    parts: list[Any] = [None] * world if rank == 0 else []
    dist.gather_object(list(results), parts if rank == 0 else None, dst=0)
    if rank != 0:
        return None
    return interleave_results(parts, size)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (identity in a single process).

    Objects travel pickled between the job's own processes; nothing is read from files.
    """
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on rank 0; ``None`` on the others.

    In a single process: ``[obj]``.
    """
    if not is_dist():
        return [obj]
    rank, world = get_dist_info()
    out: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on some rank (every rank must call it; ``flag`` alone without a group)."""
    if not is_dist():
        return flag
    return all_reduce_max(1 if flag else 0) > 0


def all_reduce_max(value: int) -> int:
    """The largest ``value`` over the ranks (every rank must call it; ``value`` alone without a group)."""
    if not is_dist():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def rescale_position(batches: int, old_world: int, new_world: int) -> int:
    """Per-rank batches to skip when a position saved by ``old_world`` ranks resumes on ``new_world``.

    The ranks' first ``k`` batches together are the first ``k * old_world`` batches' worth of
    the epoch's global order; the resumed ranks start at the first batch boundary at or after
    that point, so no sample is seen twice and fewer than ``new_world`` batches are skipped.

    >>> rescale_position(3, 2, 2), rescale_position(3, 2, 1), rescale_position(3, 1, 2)
    (3, 6, 2)
    """
    if old_world == new_world:
        return batches
    return -(-batches * old_world // new_world)


def collect_outputs(outputs: Any, size: int) -> Any:
    """:func:`collect_results` for per-sample outputs: a tensor (one row per sample) or a list.

    Rank 0 gets the rows of every rank in dataset order (tensors concatenated, on CPU); other
    ranks get ``None``; a single process gets the first ``size`` rows.

    >>> collect_outputs(torch.arange(4), size=3).tolist()
    [0, 1, 2]
    """
    if not isinstance(outputs, torch.Tensor):
        return collect_results(list(outputs), size)
    local = outputs.detach().cpu()
    parts = gather_objects(local)
    if parts is None:
        return None
    if len({p.shape[0] for p in parts}) == 1:  # padded shards: interleave the rows by a reshape
        return torch.stack(parts, dim=1).reshape(-1, *local.shape[1:])[:size]
    return torch.stack(interleave_results([list(p.unbind(0)) for p in parts], size))
