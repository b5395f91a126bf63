"""The text logger: mmcv's log lines on the console and in ``work_dir``, plus a JSON-lines log."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from typing import IO, Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook, HookFn, reachable_only
from fsm_trainer.logbuffer import LogBuffer
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState

_IN_HEADER = frozenset({"mode", "epoch", "iter", "lr", "time", "data_time", "memory"})


def format_line(log: Mapping[str, Any], *, by_epoch: bool, loader_len: int | None, max_iters: int | None, eta: str | None) -> str:
    """Format one log record as mmcv's ``TextLoggerHook`` does.

    >>> format_line({"mode": "train", "epoch": 3, "iter": 50, "lr": 0.01, "time": 0.0213,
    ...              "data_time": 0.0021, "loss": 0.23451}, by_epoch=True, loader_len=113,
    ...             max_iters=None, eta="0:01:12")
    'Epoch [3][50/113]\\tlr: 1.000e-02, eta: 0:01:12, time: 0.021, data_time: 0.002, loss: 0.2345'
    >>> format_line({"mode": "val", "epoch": 3, "iter": 20, "acc": 0.9}, by_epoch=True,
    ...             loader_len=None, max_iters=None, eta=None)
    'Epoch(val) [3][20]\\tacc: 0.9000'
    """
    if log["mode"] == "train":
        lr = log.get("lr")
        if isinstance(lr, dict):
            lr_str = " ".join(f"lr_{k}: {v:.3e}" for k, v in lr.items())
        elif lr is not None:
            lr_str = f"lr: {lr:.3e}"
        else:
            lr_str = ""
        if by_epoch:
            head = f"Epoch [{log['epoch']}][{log['iter']}/{loader_len if loader_len is not None else '?'}]\t"
        else:
            head = f"Iter [{log['iter']}/{max_iters}]\t"
        parts = [lr_str] if lr_str else []
        if "time" in log:
            if eta is not None:
                parts.append(f"eta: {eta}")
            parts.append(f"time: {log['time']:.3f}")
            parts.append(f"data_time: {log['data_time']:.3f}")
            if "memory" in log:
                parts.append(f"memory: {log['memory']}")
        line = head + ", ".join(parts) + (", " if parts else "")
    else:
        line = (f"Epoch({log['mode']}) [{log['epoch']}][{log['iter']}]\t" if by_epoch
                else f"Iter({log['mode']}) [{log['iter']}]\t")
    items = [f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
             for k, v in log.items() if k not in _IN_HEADER]
    return line + ", ".join(items)


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 5)
    if isinstance(v, list):
        return [_round(x) for x in v]
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


def text_logger_hook(
    interval: int = 10,
    *,
    ignore_last: bool = True,
    reset_flag: bool = False,
    by_epoch: bool | None = None,
    name: str = "TextLoggerHook",
    priority: int | str = Priority.VERY_LOW,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``TextLoggerHook``.

    Every ``interval`` train iterations (counted inside the epoch when ``by_epoch``, else over
    the run) it averages the buffered values, weighted by ``num_samples``, and logs a line
    with lr, eta, time, data_time and the averaged ``log_vars``; after each val epoch it logs
    the epoch's averages. Lines go to the run's logger and, with a ``work_dir``, to
    ``<timestamp>.log``; records go to ``<timestamp>.log.json`` (mmcv's layout).

    Args:
        interval: log every this many iterations (> 0).
        ignore_last: skip the last iterations of an epoch that do not fill an interval.
        reset_flag: clear the averages after logging (always done by the last logger).
        by_epoch: count ``interval`` inside epochs; defaults to the table's kind.

    Differences from mmcv: in an iter-based run, val iterations are averaged apart from train
    ones and logged as ``Iter(val) [<completed train iterations>]`` when each val segment ends
    (mmcv mixes them into the next train line).
    """
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        msg = f"interval must be a positive int, got {interval!r}"
        raise ValueError(msg)

    def factory(ctx: RunContext) -> Hook:
        buf = ctx.log_buffer
        per_epoch = ctx.table.by == "epoch" if by_epoch is None else by_epoch
        index = ctx.register_logger(name)
        iter_val = ctx.table.by == "iter" and "val" in ctx.table.reachable_modes()
        val_buf = LogBuffer()
        files: dict[str, IO[str]] = {}
        start_iter = [0]
        time_total = [0.0]

        def is_last_logger() -> bool:
            return reset_flag or index == len(ctx.loggers) - 1

        def emit(s: TrainState, mode: str, out: Mapping[str, Any], it: int) -> None:
            log: dict[str, Any] = {"mode": mode, "epoch": s.epoch + 1 if mode == "train" else s.epoch, "iter": it}
            lr = ctx.current_lr()
            if isinstance(lr, dict):
                log["lr"] = {k: v[0] for k, v in lr.items() if v}
            elif lr:
                log["lr"] = lr[0]
            eta = None
            if mode == "train" and "time" in out:
                time_total[0] += out["time"] * interval
                max_iters = ctx.max_iters
                if max_iters is not None:
                    avg = time_total[0] / (s.iter - start_iter[0] + 1)
                    eta = str(datetime.timedelta(seconds=int(avg * (max_iters - s.iter - 1))))
                mem = _max_memory_mb()
                if mem is not None:
                    log["memory"] = mem
            log.update(out)
            line = format_line(log, by_epoch=per_epoch, loader_len=ctx.loader_len(s.phase),
                               max_iters=ctx.max_iters, eta=eta)
            ctx.logger.info(line)
            if "log" in files:
                files["log"].write(line + "\n")
                files["log"].flush()
                files["json"].write(json.dumps(_round(log)) + "\n")
                files["json"].flush()

        def log_train(s: TrainState) -> None:
            emit(s, "train", buf.output, s.inner_iter + 1 if per_epoch else s.iter + 1)
            if is_last_logger():
                buf.clear_output()

        def before_run(s: TrainState) -> TrainState:
            start_iter[0] = s.iter
            if ctx.work_dir is not None:
                files["log"] = open(ctx.work_dir / f"{ctx.timestamp}.log", "a", encoding="utf-8")  # noqa: SIM115
                files["json"] = open(ctx.work_dir / f"{ctx.timestamp}.log.json", "a", encoding="utf-8")  # noqa: SIM115
                if ctx.meta:
                    files["json"].write(json.dumps(_round(ctx.meta), default=str) + "\n")
            return s

        def after_run(s: TrainState) -> TrainState:
            for f in files.values():
                f.close()
            files.clear()
            return s

        def before_epoch(s: TrainState) -> TrainState:
            buf.clear()
            return s

        def after_train_iter(s: TrainState) -> TrainState:
            if per_epoch:
                if (s.inner_iter + 1) % interval == 0:
                    buf.average(interval)
                elif not ignore_last and s.inner_iter + 1 == ctx.loader_len(s.phase):
                    buf.average(interval)
            elif (s.iter + 1) % interval == 0:
                buf.average(interval)
            elif not ignore_last and s.inner_iter + 1 == ctx.loader_len(s.phase):
                buf.average(interval)
            if buf.ready:
                log_train(s)
            return s

        def after_train_epoch(s: TrainState) -> TrainState:
            if buf.ready:
                log_train(s)
            return s

        def after_val_epoch(s: TrainState) -> TrainState:
            buf.average()
            emit(s, "val", buf.output, s.inner_iter + 1 if per_epoch else s.iter + 1)
            if is_last_logger():
                buf.clear_output()
            return s

        def collect_val(s: TrainState) -> TrainState:
            out = s.outputs
            log_vars = out.get("log_vars")
            if log_vars:
                val_buf.update(log_vars, out.get("num_samples", 1))
            return s

        def flush_val(s: TrainState) -> TrainState:
            if val_buf.values:
                val_buf.average()
                emit(s, "val", val_buf.output, s.iter)
                val_buf.clear()
            return s

        on: dict[str, HookFn] = {
            "before_run": before_run, "after_run": after_run, "before_epoch": before_epoch,
            "after_train_iter": after_train_iter,
        }
        if ctx.table.by == "epoch":
            on.update(after_train_epoch=after_train_epoch, after_val_epoch=after_val_epoch)
        elif iter_val:
            on.update(after_val_iter=collect_val, before_train_iter=flush_val, after_epoch=_chain(flush_val, on.get("after_epoch")))
        return Hook(name, priority, reachable_only(on, ctx.table))

    return factory


def _chain(first: HookFn, second: HookFn | None) -> HookFn:
    if second is None:
        return first
    return lambda s: second(first(s))


def _max_memory_mb() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.max_memory_allocated()) // (1024 * 1024)
