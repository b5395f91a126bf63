"""torch.distributed helpers: process group from torchrun's environment, rank queries,
cross-rank averages and result gathering, and model wrapping (DDP, FSDP).

Launch with torchrun, which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_dist` reads them (``env://``) and picks ``nccl`` on GPU, ``gloo``
on CPU. Everything here also works, as a no-op or identity, in a single process without a
process group, so the same code runs both ways.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


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
        backend: ``nccl`` when CUDA is available, else ``gloo``, unless given.
        timeout_s: collective timeout.

    Returns:
        ``(rank, world_size)``.

    Raises:
        ValueError: an unknown launcher, or the torchrun variables are missing.
    """
    if launcher != "pytorch":
        msg = f"unknown launcher {launcher!r}; allowed: 'pytorch' (torchrun)"
        raise ValueError(msg)
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        msg = f"launcher 'pytorch' needs torchrun's environment; missing {', '.join(missing)} (start with torchrun)"
        raise ValueError(msg)
    if is_dist():
        return get_dist_info()
    use_cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
    return get_dist_info()


def all_reduce_mean(values: Mapping[str, float]) -> dict[str, float]:
    """Average scalar values over ranks (every rank must call it with the same keys)."""
    if not is_dist() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
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


class StepModule(nn.Module):
    """Routes an mmcv-style model's ``train_step``/``val_step`` through ``forward``.

    DistributedDataParallel synchronises gradients only for computations that went through
    its ``forward``; wrapping the model in this module and the module in DDP makes
    ``ddp(batch, "train")`` call ``model.train_step(batch, optimizer)`` with DDP's bookkeeping.
    """

    def __init__(self, model: nn.Module, optimizer: Any = None) -> None:
        super().__init__()
        self.model = model
        self.optimizer = optimizer

    def forward(self, batch: Any, mode: str = "train") -> Any:
        if mode == "train":
            return self.model.train_step(batch, self.optimizer)
        return self.model.val_step(batch, self.optimizer)


def wrap_model(
    model: nn.Module, optimizer: Any = None, *, fsdp: bool = False, find_unused_parameters: bool = False
) -> nn.Module:
    """Wrap ``model`` for data-parallel training on the current process group.

    mmcv-style models (with ``train_step``) are wrapped through :class:`StepModule`, so call
    the result as ``wrapped(batch, "train")``; plain modules are wrapped directly. On CUDA the
    model is moved to ``LOCAL_RANK``'s device first. ``fsdp=True`` uses FullyShardedDataParallel
    instead of DistributedDataParallel.
    """
    if not is_dist():
        msg = "wrap_model needs an initialised process group (call init_dist() under torchrun)"
        raise RuntimeError(msg)
    inner: nn.Module = StepModule(model, optimizer) if hasattr(model, "train_step") else model
    device_ids = None
    if torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
        inner = inner.to(device)
        device_ids = [device.index]
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(inner)
    return nn.parallel.DistributedDataParallel(
        inner, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )
