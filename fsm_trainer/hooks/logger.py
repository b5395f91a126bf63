"""The text logger: mmcv's log lines on the console and in ``work_dir``, plus a JSON-lines log."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from typing import IO, Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook
from fsm_trainer.hooks.logger_base import LogRecord, LogWriter, logger_hook, writer
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState

_IN_HEADER = frozenset({"mode", "epoch", "iter", "lr", "time", "data_time", "memory"})


def format_line(
    log: Mapping[str, Any], *, by_epoch: bool, loader_len: int | None, max_iters: int | None, eta: str | None
) -> str:
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
    # mmcv's _round_float: floats and lists of floats to 5 digits; dicts (per-optimizer lr) as they are.
    if isinstance(v, float):
        return round(v, 5)
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def json_record(record: LogRecord, lr: Any, memory: int | None) -> dict[str, Any]:
    """The ``.log.json`` object of a record, in mmcv's key order: mode, epoch, iter, lr, memory, values.

    >>> json_record(LogRecord("train", 1, 10, 10, {"time": 0.123456789, "loss": 0.5}), 0.01, None)
    {'mode': 'train', 'epoch': 1, 'iter': 10, 'lr': 0.01, 'time': 0.12346, 'loss': 0.5}
    """
    log: dict[str, Any] = {"mode": record.mode, "epoch": record.epoch, "iter": record.iter}
    if lr is not None:
        log["lr"] = lr
    if memory is not None and "time" in record.values:
        log["memory"] = memory
    log.update(record.values)
    return {k: _round(v) for k, v in log.items()}


def text_logger_hook(
    interval: int = 10,
    *,
    ignore_last: bool = True,
    reset_flag: bool = False,
    by_epoch: bool | None = None,
    interval_exp_name: int = 1000,
    name: str = "TextLoggerHook",
    priority: int | str = Priority.VERY_LOW,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``TextLoggerHook``.

    Every ``interval`` train iterations (counted inside the epoch when ``by_epoch``, else over
    the run) it averages the buffered values, weighted by ``num_samples``, and logs a line
    with lr, eta, time, data_time, memory (CUDA) and the averaged ``log_vars``; after each val
    epoch it logs the epoch's averages, and after an evaluation the eval hook's metrics. Lines
    go to the run's logger and, with a ``work_dir``, to ``<timestamp>.log``; records go to
    ``<timestamp>.log.json`` in mmcv's layout (first line: the run's ``meta``, if any; then one
    object per record with ``mode, epoch, iter, lr, [memory,] <values>``, floats rounded to 5
    digits), so mmcv's log-analysis scripts read it. When ``meta`` has an ``exp_name``, it is
    logged every ``interval_exp_name`` iterations and at the end of each epoch, as mmcv does.

    Args:
        interval: log every this many iterations (> 0).
        ignore_last: skip the last iterations of an epoch that do not fill an interval.
        reset_flag: clear the averages after logging (always done by the last logger).
        by_epoch: count ``interval`` inside epochs; defaults to the table's kind.
        interval_exp_name: see above.

    The shared rules (when to average, what a record is, iter-based val) are in
    :mod:`fsm_trainer.hooks.logger_base`.
    """

    def make_writer(ctx: RunContext, per_epoch: bool) -> LogWriter:
        files: dict[str, IO[str]] = {}
        start_iter = [0]
        time_total = [0.0]
        cuda = _cuda_available()
        exp_name = ctx.meta.get("exp_name")

        def open_files(s: TrainState) -> None:
            start_iter[0] = s.iter
            if ctx.work_dir is not None:
                ctx.work_dir.mkdir(parents=True, exist_ok=True)
                files["log"] = open(ctx.work_dir / f"{ctx.timestamp}.log", "a", encoding="utf-8")  # noqa: SIM115
                files["json"] = open(ctx.work_dir / f"{ctx.timestamp}.log.json", "a", encoding="utf-8")  # noqa: SIM115
                if ctx.meta:
                    files["json"].write(json.dumps({k: _round(v) for k, v in ctx.meta.items()}, default=str) + "\n")
                    files["json"].flush()

        def close_files() -> None:
            for f in files.values():
                f.close()
            files.clear()

        def write(s: TrainState, record: LogRecord) -> None:
            if exp_name is not None and (
                (s.iter + 1) % interval_exp_name == 0
                or (per_epoch and s.inner_iter + 1 == ctx.loader_len(s.phase))
            ):
                ctx.logger.info("Exp name: %s", exp_name)
            lr = ctx.current_lr()
            first_lr = {k: v[0] for k, v in lr.items() if v} if isinstance(lr, dict) else (lr[0] if lr else None)
            memory = None
            if cuda and "time" in record.values:  # several ranks: the busiest one's, as mmcv
                memory = ctx.logs.memory_mb if ctx.logs.memory_mb is not None else _max_memory_mb()
            log = json_record(record, first_lr, memory)
            eta = None
            if record.mode == "train" and "time" in record.values:
                time_total[0] += record.values["time"] * interval
                max_iters = ctx.max_iters
                if max_iters is not None:
                    avg = time_total[0] / (s.iter - start_iter[0] + 1)
                    eta = str(datetime.timedelta(seconds=int(avg * (max_iters - s.iter - 1))))
            shown = {**log, **{k: v for k, v in record.values.items() if k in log}}  # unrounded in the line
            line = format_line(shown, by_epoch=per_epoch, loader_len=ctx.loader_len(s.phase),
                               max_iters=ctx.max_iters, eta=eta)
            ctx.logger.info(line)
            if files:
                files["log"].write(line + "\n")
                files["log"].flush()
                files["json"].write(json.dumps(log) + "\n")
                files["json"].flush()

        return writer(write, open_files, close_files)

    return logger_hook(make_writer, name=name, interval=interval, ignore_last=ignore_last,
                       reset_flag=reset_flag, by_epoch=by_epoch, priority=priority)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _max_memory_mb() -> int:
    import torch

    return int(torch.cuda.max_memory_allocated()) // (1024 * 1024)
