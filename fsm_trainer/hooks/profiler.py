"""mmcv's ``ProfilerHook``: ``torch.profiler`` over chosen iterations or epochs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.errors import HookError
from fsm_trainer.hook import Hook, HookFn, reachable_only, resolve_by_epoch
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def profiler_hook(
    by_epoch: bool | None = None,
    profile_iters: int = 1,
    activities: Sequence[str] | None = None,
    schedule: Mapping[str, int] | None = None,
    on_trace_ready: Callable[[Any], None] | Mapping[str, Any] | None = None,
    *,
    record_shapes: bool = False,
    profile_memory: bool = False,
    with_stack: bool = False,
    with_flops: bool = False,
    json_trace_path: str | Path | None = None,
    name: str = "ProfilerHook",
    priority: int | str = Priority.NORMAL,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``ProfilerHook``: ``torch.profiler`` over the first epochs or iterations.

    Args:
        by_epoch: profile the first ``profile_iters`` epochs (default for epoch-based tables),
            else the first ``profile_iters`` train iterations.
        profile_iters: how many (>= 1, at most the run's length).
        activities: ``"cpu"``/``"cuda"``; default: CPU, plus CUDA when available.
        schedule: ``torch.profiler.schedule(**schedule)`` (``wait``, ``warmup``, ``active``...).
        on_trace_ready: a handler ``prof -> None``, ``{"type": "log_trace", **table_kwargs}``
            (logs ``prof.key_averages().table(...)``), or ``{"type": "tb_trace", "dir_name": ...}``
            (``torch.profiler.tensorboard_trace_handler``; ``dir_name`` relative to ``work_dir``,
            default ``tf_tracing_logs``).
        record_shapes, profile_memory, with_stack, with_flops: passed to the profiler.
        json_trace_path: also export a Chrome trace there when profiling ends.

    The profiler steps after every train iteration while it runs; it is stopped at the end of
    the profiled span, or at the end of the run (also when the run raises).
    """
    if isinstance(profile_iters, bool) or not isinstance(profile_iters, int) or profile_iters < 1:
        msg = f"profile_iters must be an int >= 1, got {profile_iters!r}"
        raise HookError(msg)

    def factory(ctx: RunContext) -> Hook:
        import torch
        from torch import profiler

        table = ctx.table
        per_epoch = resolve_by_epoch(name, by_epoch, table)
        limit = table.max_epochs if per_epoch else ctx.max_iters
        if limit is not None and limit < profile_iters:
            units = "epochs" if per_epoch else "iterations"
            msg = f"{name}: profile_iters={profile_iters} is more than the run's {limit} {units}"
            raise HookError(msg)
        default = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        names = list(activities) if activities is not None else default
        kinds = {"cpu": profiler.ProfilerActivity.CPU, "cuda": profiler.ProfilerActivity.CUDA}
        bad = [a for a in names if a.lower() not in kinds]
        if bad:
            msg = f"{name}: unknown activities {bad}; allowed: cpu, cuda"
            raise HookError(msg)
        handler: Callable[[Any], None] | None
        if on_trace_ready is None or callable(on_trace_ready):
            handler = on_trace_ready
        else:
            cfg = dict(on_trace_ready)
            kind = cfg.pop("type", None)
            if kind == "log_trace":
                def handler(prof: Any) -> None:
                    ctx.logger.info("%s", prof.key_averages().table(**cfg))
            elif kind == "tb_trace":
                d = Path(cfg.pop("dir_name", "tf_tracing_logs"))
                if not d.is_absolute() and ctx.work_dir is not None:
                    d = ctx.work_dir / d
                handler = profiler.tensorboard_trace_handler(str(d), **cfg)
            else:
                msg = f"{name}: on_trace_ready type must be 'log_trace' or 'tb_trace', got {kind!r}"
                raise HookError(msg)
        active: list[Any] = []

        def stop() -> None:
            if active:
                prof = active.pop()
                ctx.logger.info("profiler may take a few minutes...")
                prof.__exit__(None, None, None)
                if json_trace_path is not None:
                    prof.export_chrome_trace(str(json_trace_path))

        def before_run(s: TrainState) -> TrainState:
            prof = profiler.profile(
                activities=[kinds[a.lower()] for a in names],
                schedule=profiler.schedule(**schedule) if schedule is not None else None,
                on_trace_ready=handler, record_shapes=record_shapes, profile_memory=profile_memory,
                with_stack=with_stack, with_flops=with_flops,
            )
            prof.__enter__()  # type: ignore[no-untyped-call]  # torch leaves profile.__enter__ unannotated
            active.append(prof)
            ctx.on_exit.append(stop)
            ctx.logger.info("profiler is profiling...")
            return s

        def after_train_iter(s: TrainState) -> TrainState:
            if active:
                active[0].step()
                if not per_epoch and s.iter + 1 >= profile_iters:
                    stop()
            return s

        def after_train_epoch(s: TrainState) -> TrainState:
            if per_epoch and s.epoch + 1 >= profile_iters:
                stop()
            return s

        def after_run(s: TrainState) -> TrainState:
            stop()
            return s

        on: dict[str, HookFn] = {"before_run": before_run, "after_train_iter": after_train_iter, "after_run": after_run}
        if per_epoch:
            on["after_train_epoch"] = after_train_epoch
        return Hook(name, priority, reachable_only(on, table))

    return factory


__all__ = ["profiler_hook"]
