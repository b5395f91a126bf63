"""Distributed hooks: buffer synchronisation (mmcv's SyncBuffersHook)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist

from fsm_trainer.context import RunContext
from fsm_trainer.dist import get_dist_info
from fsm_trainer.hook import Hook, reachable_only
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def sync_buffers(module: torch.nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running statistics...) over ranks.

    Integer buffers (``num_batches_tracked``) are left alone: every rank counts the same
    batches. A no-op in a single process.
    """
    _, world = get_dist_info()
    if world == 1:
        return
    floats = [b for b in module.buffers() if b.is_floating_point()]
    if not floats:
        return
    flat = torch.cat([b.detach().reshape(-1) for b in floats])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    with torch.no_grad():
        for b in floats:
            n = b.numel()
            b.copy_(flat[offset: offset + n].view_as(b))
            offset += n


def sync_buffers_hook(
    distributed: bool = True, *, name: str = "SyncBuffersHook", priority: int | str = Priority.NORMAL
) -> Callable[[RunContext], Hook]:
    """mmcv's ``SyncBuffersHook``: average model buffers over ranks at the end of each epoch.

    In an iter-based run ``after_epoch`` is called once, before ``after_run``, as in mmcv.
    ``distributed=False`` turns it off (mmcv's argument).
    """

    def factory(ctx: RunContext) -> Hook:
        model = ctx.model

        def after_epoch(s: TrainState) -> TrainState:
            sync_buffers(model)
            return s

        on = {"after_epoch": after_epoch} if distributed else {}
        return Hook(name, priority, reachable_only(on, ctx.table))

    return factory
