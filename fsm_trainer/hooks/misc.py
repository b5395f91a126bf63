"""Small hooks: mmcv's ``EmptyCacheHook``, ``ProfilerHook`` and ``ClosureHook``, and two mmcv lacks,
early stopping on an eval metric and a guard against non-finite losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from fsm_trainer.context import RunContext
from fsm_trainer.errors import FsmTrainerError, HookError
from fsm_trainer.hook import POINTS, Hook, HookFn, reachable_only, resolve_by_epoch
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState, make_state

# --------------------------------------------------------------------------- EmptyCacheHook


def empty_cache_hook(
    before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False,
    *, name: str = "EmptyCacheHook", priority: int | str = Priority.NORMAL,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``EmptyCacheHook``: ``torch.cuda.empty_cache()`` at the chosen points.

    ``before_epoch``/``after_epoch`` are the generic points (every train and val epoch of an
    epoch-based run; the start and end of an iter-based run); ``after_iter`` is every train
    and val iteration. Calling it without CUDA does nothing.
    """

    def factory(ctx: RunContext) -> Hook:
        import torch

        def empty(s: TrainState) -> TrainState:
            torch.cuda.empty_cache()
            return s

        on: dict[str, HookFn] = {}
        if before_epoch:
            on["before_epoch"] = empty
        if after_epoch:
            on["after_epoch"] = empty
        if after_iter:
            on.update(after_train_iter=empty, after_val_iter=empty)
        return Hook(name, priority, reachable_only(on, ctx.table))

    return factory


# --------------------------------------------------------------------------- ClosureHook


def closure_hook(
    point: str, fn: Callable[[TrainState], TrainState | None], *, name: str | None = None,
    priority: int | str = Priority.NORMAL,
) -> Hook:
    """mmcv's ``ClosureHook``: call ``fn(state)`` at ``point``.

    ``fn`` may return a new state, or ``None`` to keep the state (a plain side effect).

    >>> seen = []
    >>> h = closure_hook("after_train_iter", lambda s: seen.append(s.iter))
    >>> h.on["after_train_iter"](TrainState(iter=4)) == TrainState(iter=4), seen
    (True, [4])
    >>> closure_hook("after_everything", print)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fsm_trainer.errors.HookError: unknown hook point 'after_everything'; allowed: before_run, after_run, ...
    """
    if point not in POINTS:
        msg = f"unknown hook point {point!r}; allowed: {', '.join(POINTS)}"
        raise HookError(msg)
    if not callable(fn):
        msg = f"fn must be callable, got {fn!r}"
        raise HookError(msg)

    def call(s: TrainState) -> TrainState:
        out = fn(s)
        return s if out is None else out  # type: ignore[return-value]

    return Hook(name or f"ClosureHook({getattr(fn, '__name__', 'fn')}@{point})", priority, {point: call})


# --------------------------------------------------------------------------- ProfilerHook


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
        raise ValueError(msg)

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
            handler = on_trace_ready  # type: ignore[assignment]
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
            prof.__enter__()
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


# --------------------------------------------------------------------------- early stopping


@attrs.frozen
class EarlyStopping:
    """Immutable early-stopping progress (the Flax ``EarlyStopping`` pattern): ``update`` returns a new record.

    >>> es = EarlyStopping(rule="less", patience=2)
    >>> for loss in (1.0, 0.8, 0.85, 0.9):
    ...     es = es.update(loss)
    >>> es.best, es.wait, es.should_stop
    (0.8, 2, True)
    """

    rule: str = "greater"
    patience: int = 3
    min_delta: float = 0.0
    best: float | None = None
    wait: int = 0
    should_stop: bool = False

    def update(self, value: float) -> EarlyStopping:
        """Record one new metric value; a NaN counts as no improvement."""
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.rule == "greater":
            improved = value > self.best + self.min_delta
        else:
            improved = value < self.best - self.min_delta
        if improved:
            return attrs.evolve(self, best=value, wait=0, should_stop=False)
        wait = self.wait + 1
        return attrs.evolve(self, wait=wait, should_stop=wait >= self.patience)


def early_stopping_hook(
    monitor: str,
    *,
    patience: int = 3,
    rule: str | None = None,
    min_delta: float = 0.0,
    eval_name: str = "EvalHook",
    name: str = "EarlyStoppingHook",
    priority: int | str = Priority.LOW + 5,
) -> Callable[[RunContext], Hook]:
    """Stop the run when the eval metric ``monitor`` has not improved for ``patience`` evaluations.

    It reads the metrics the eval hook ``eval_name`` keeps in ``state.hook_states`` after each
    evaluation, so it runs at a priority between the eval hook (LOW) and the loggers
    (VERY_LOW); the loggers still log the last evaluation, then the run stops
    (``after_run`` runs). Its progress (``best``, ``wait``) and the position of the last
    evaluation it counted (``counted``: the eval hook's ``last`` without its metrics, e.g.
    ``{"epoch": 3}``) are kept in ``state.hook_states[name]``, so it survives a resume: the
    evaluation restored from a checkpoint, or repeated at the same position by an eval hook
    with ``start`` (mmcv's evaluation after a resume), is not counted again.

    Args:
        monitor: a metric name the eval hook returns (e.g. ``"accuracy"``).
        patience: evaluations without improvement before stopping (>= 1).
        rule: ``"greater"``/``"less"``; inferred from ``monitor`` when ``None``.
        min_delta: the smallest change that counts as an improvement.
    """
    from fsm_trainer.hooks.eval import infer_rule

    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        msg = f"patience must be an int >= 1, got {patience!r}"
        raise ValueError(msg)
    resolved = rule if rule is not None else infer_rule(monitor)
    if resolved not in ("greater", "less"):
        msg = f"rule must be 'greater', 'less' or None, got {rule!r}"
        raise ValueError(msg)

    def factory(ctx: RunContext) -> Hook:
        def check(s: TrainState) -> TrainState:
            ev = s.hook_states.get(eval_name)
            last = ev.get("last") if ev else None
            if last is None:
                return s
            at = {k: v for k, v in last.items() if k != "metrics"}
            kept = s.hook_states.get(name) or {}
            if kept.get("counted") == at:
                return s
            if monitor not in last["metrics"]:
                got = sorted(last["metrics"])
                msg = f"{name}: the eval hook {eval_name!r} returned no {monitor!r} (metrics: {got})"
                raise HookError(msg)
            es = EarlyStopping(resolved, patience, min_delta, kept.get("best"), kept.get("wait", 0))
            es = es.update(float(last["metrics"][monitor]))
            s = s.with_hook_state(name, {"best": es.best, "wait": es.wait, "stopped": es.should_stop, "counted": at})
            if es.should_stop:
                ctx.logger.info("%s: no improvement of %s for %d evaluations (best %.4f); stopping",
                                name, monitor, es.wait, es.best)
                return s.request_stop()
            return s

        def stay_stopped(s: TrainState) -> TrainState:
            # Resumed from a checkpoint saved when this hook stopped the run: the run that never
            # stopped ends there too, so the resumed one ends at once (remove the hook to go on).
            kept = s.hook_states.get(name) or {}
            if kept.get("stopped"):
                ctx.logger.info("%s: the run had stopped early (best %s %.4f); it stays stopped", name, monitor,
                                kept.get("best"))
                return s.request_stop()
            return s

        on = {"before_run": stay_stopped, "after_train_iter": check}
        if ctx.table.by == "epoch":
            on["after_train_epoch"] = check
        return Hook(name, priority, reachable_only(on, ctx.table))

    return factory


# --------------------------------------------------------------------------- non-finite guard


class NonFiniteLossError(FsmTrainerError, FloatingPointError):
    """The loss became NaN or infinite (``nan_guard_hook(action="raise")``)."""


def _last_checkpoint(ctx: RunContext) -> str | None:
    last = ctx.meta.get("hook_msgs", {}).get("last_ckpt")
    if last is not None:
        return str(last)
    if ctx.resumed_from is not None:
        return str(ctx.resumed_from)
    return None


def nan_guard_hook(
    keys: Sequence[str] = ("loss",),
    *,
    action: str = "stop",
    name: str = "NanGuardHook",
    priority: int | str = Priority.ABOVE_NORMAL - 5,
) -> Callable[[RunContext], Hook]:
    """Catch a NaN or infinite loss before the optimizer steps on it.

    After each train iteration, before the optimizer hook (ABOVE_NORMAL), it checks the
    step's ``log_vars[key]`` (plain floats: no device sync) for each of ``keys``, falling back
    to ``outputs[key]`` when ``log_vars`` lacks it. On a non-finite value:

    * ``"stop"``: the step is skipped (see below), the run stops after this iteration
      (``after_run`` runs), and the error log names the iteration and the last checkpoint
      saved (or resumed from) in this run; ``hook_states[name]`` records it.
    * ``"skip"``: the step is skipped, a warning is logged, training goes on;
      ``hook_states[name]`` counts the skipped steps.
    * ``"raise"``: :class:`NonFiniteLossError` with the same message.

    Skipping replaces the step's ``loss`` by a zero that depends on no parameter, so the
    optimizer hook's ``zero_grad`` (set to ``None``), ``backward`` and ``step`` leave every
    parameter and optimizer buffer untouched. The non-finite ``log_vars`` were already put in
    the log buffer, so that interval's logged average shows them. With an fp16 ``GradScaler``
    use ``"raise"`` (the scaler refuses a step without gradients; it skips non-finite steps
    itself anyway).
    """
    if action not in ("stop", "skip", "raise"):
        msg = f"action must be 'stop', 'skip' or 'raise', got {action!r}"
        raise ValueError(msg)
    keys = tuple(keys)

    def factory(ctx: RunContext) -> Hook:
        import torch

        def value_of(out: Mapping[str, Any], key: str) -> float | None:
            log_vars = out.get("log_vars")
            v = log_vars.get(key) if log_vars else None
            if v is None:
                v = out.get(key)
            if v is None:
                return None
            if isinstance(v, torch.Tensor):
                return float(v.detach().float().sum())
            return float(v)

        def check(s: TrainState) -> TrainState:
            out = s.outputs
            for key in keys:
                v = value_of(out, key)
                if v is None or math.isfinite(v):
                    continue
                where = f"iteration {s.iter + 1} (epoch {s.epoch + 1}, batch {s.inner_iter + 1})"
                ckpt = _last_checkpoint(ctx)
                resume = f"the last good checkpoint is {ckpt}" if ckpt else "no checkpoint was saved in this run"
                msg = f"{name}: {key} is {v} at {where}; {resume}"
                if action == "raise":
                    raise NonFiniteLossError(msg)
                skipped = dict(out)
                skipped["loss"] = torch.zeros((), requires_grad=True)
                kept = dict(s.hook_states.get(name) or {})
                s = make_state(s.epoch, s.iter, s.inner_iter, s.mode, skipped, s.phase, s.phase_done, s.stop,
                               s.hook_states)
                if action == "skip":
                    ctx.logger.warning("%s; the step was skipped", msg)
                    kept["skipped"] = kept.get("skipped", 0) + 1
                    kept["last_skipped_iter"] = s.iter
                    return s.with_hook_state(name, kept)
                ctx.logger.error("%s; the step was skipped and the run stops", msg)
                kept.update(stopped_at_iter=s.iter, key=key, value=str(v), last_good_checkpoint=ckpt)
                return s.with_hook_state(name, kept).request_stop()
            return s

        return Hook(name, priority, {"after_train_iter": check})

    return factory


__all__ = [
    "EarlyStopping", "NonFiniteLossError", "closure_hook", "early_stopping_hook", "empty_cache_hook",
    "nan_guard_hook", "profiler_hook",
]
