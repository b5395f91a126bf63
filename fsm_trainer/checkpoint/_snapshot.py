"""Run snapshots: everything a run needs to continue, captured from a run and saved by rank 0."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fsm_trainer.checkpoint._commit import save_checkpoint
from fsm_trainer.state import TrainState


def _optimizer_state(optimizer: Any) -> Any:
    if optimizer is None:
        return None
    if isinstance(optimizer, Mapping):
        return {k: o.state_dict() for k, o in optimizer.items()}
    return optimizer.state_dict()


def data_position(ctx: Any, state: TrainState) -> dict[str, Any]:
    """Where the data is for a run at ``state``: plain data stored in the checkpoint.

    Epoch-based: the train epoch and the batches of it already consumed (``state.inner_iter``
    in a mid-epoch state). Iter-based: ``(pass, batches taken in the pass)`` of every loader.
    Distributed, batches are per rank and ``world_size`` says how many ranks there were.
    """
    from fsm_trainer.dist import get_dist_info

    world = get_dist_info()[1]
    ranks = {"world_size": world} if world > 1 else {}  # batches are per rank: a position needs the count
    if ctx.table.by == "iter" and ctx.iter_loaders is not None:
        return {"kind": "iter", "loaders": [[il.epoch, il.index] for il in ctx.iter_loaders], **ranks}
    return {"kind": "epoch", "epoch": state.epoch, "batches": state.inner_iter, **ranks}


def snapshot(ctx: Any, state: TrainState, *, save_optimizer: bool = True,
             rng_states: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The keyword arguments of :func:`save_checkpoint` for a run (``ctx``) resuming at ``state``.

    ``state`` must be the position to continue from (the counters already advanced). The
    model, optimizer, every hook's ``state_dict()``, the RNG states (``rng_states`` if given:
    :func:`fsm_trainer.rng.capture` output taken when ``state`` was current), the data
    position and the log buffer are captured now.

    Distributed, every rank must call it at the same point: each rank's RNG states and log
    buffer are gathered to rank 0 (``rng["ranks"][r]``, ``log_buffer["ranks"][r]``), which gets
    the arguments; the other ranks get ``None`` and write nothing. Model, optimizer and hook
    states are rank 0's: data-parallel training keeps them equal on every rank. A model sharded
    by FSDP is gathered into full, unsharded state dicts (model, optimizer in
    ``Optimizer.state_dict()`` layout, hook tensors), so the checkpoint loads anywhere.
    """
    from fsm_trainer import rng
    from fsm_trainer.dist import fsdp_state_dicts, full_tensors, gather_objects, get_dist_info, is_fsdp

    sharded = None
    if is_fsdp(ctx.model):  # collectives: every rank takes part, rank 0 gets full tensors
        msd, osd = fsdp_state_dicts(ctx.model, ctx.optimizer if save_optimizer else None)
        hooks_full = full_tensors({h.name: h.state_dict() for h in ctx.hooks if h.state_dict is not None})
        sharded = (msd, osd, hooks_full)
    buf = None
    if ctx.uses_log_buffer:
        b = ctx.log_buffer
        buf = {"values": b.values, "counts": b.counts, "output": b.output, "ready": b.ready}
    states = dict(rng_states) if rng_states is not None else rng.capture()
    rank, world = get_dist_info()
    if world > 1:
        per_rank = gather_objects({"rng": states, "log_buffer": buf})
        if rank != 0 or per_rank is None:
            return None
        states = {**states, "ranks": [p["rng"] for p in per_rank]}
        if buf is not None:
            buf = {**buf, "ranks": [p["log_buffer"] for p in per_rank]}
    if sharded is not None:
        model, opt_state, hooks = sharded
    else:
        model = ctx.model.state_dict() if hasattr(ctx.model, "state_dict") else {}
        hooks = {h.name: h.state_dict() for h in ctx.hooks if h.state_dict is not None}
        opt_state = _optimizer_state(ctx.optimizer) if save_optimizer else None
    return {
        "state": state, "table": ctx.table, "model": model,
        "optimizer": opt_state,
        "hooks": hooks, "rng": states, "data": data_position(ctx, state), "log_buffer": buf,
        "meta": ctx.meta,
    }


def save_snapshot(ctx: Any, state: TrainState, directory: str | Path, name: str, *,
                  save_optimizer: bool = True, update_latest: bool = True,
                  rng_states: Mapping[str, Any] | None = None) -> Path:
    """:func:`snapshot` then :func:`save_checkpoint`, on every rank of a job.

    Rank 0 writes; then every rank waits (a barrier) until the checkpoint is committed, so
    no rank runs ahead of a checkpoint that may be resumed from. Returns the checkpoint's path
    on every rank. Other ranks' directories stay untouched.
    """
    from fsm_trainer.dist import barrier

    kwargs = snapshot(ctx, state, save_optimizer=save_optimizer, rng_states=rng_states)
    path = Path(directory) / name
    if kwargs is not None:
        path = save_checkpoint(directory, name, **kwargs, update_latest=update_latest)
    barrier()
    return path


def _for_rank(saved: Any, rank: int, world: int) -> Any:
    """This rank's entry of a per-rank list saved by :func:`snapshot` (rank 0's when the job shrank or grew)."""
    if not isinstance(saved, dict) or "ranks" not in saved:
        return saved
    ranks = saved["ranks"]
    if len(ranks) == world:
        return ranks[rank]
    return {k: v for k, v in saved.items() if k != "ranks"}
