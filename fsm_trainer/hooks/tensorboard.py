"""mmcv's ``TensorboardLoggerHook``: scalars (and text) in TensorBoard event files.

Needs the ``tensorboard`` package (``pip install tensorboard``, or ``fsm-trainer[tensorboard]``);
it is imported when the hook is built, so a run without it never needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook
from fsm_trainer.hooks.logger_base import LogRecord, LogWriter, logger_hook, scalar_tags, writer
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch.utils.tensorboard imports the tensorboard package
        msg = "tensorboard_logger_hook needs TensorBoard: pip install tensorboard (or fsm-trainer[tensorboard])"
        raise ImportError(msg) from exc
    return SummaryWriter


def tensorboard_logger_hook(
    log_dir: str | Path | None = None,
    interval: int = 10,
    *,
    ignore_last: bool = True,
    reset_flag: bool = False,
    by_epoch: bool | None = None,
    name: str = "TensorboardLoggerHook",
    priority: int | str = Priority.VERY_LOW,
) -> Callable[[RunContext], Hook]:
    """Log every record to TensorBoard, as mmcv's ``TensorboardLoggerHook``.

    Each value becomes the scalar ``<mode>/<key>`` (strings become text) at step ``iter + 1``,
    with ``learning_rate`` and ``momentum`` (``learning_rate/<name>`` for a dict of
    optimizers); ``time`` and ``data_time`` are left out, as in mmcv, and so are values that
    are neither numbers nor strings.

    Args:
        log_dir: where the event files go; default ``<work_dir>/tf_logs``.
        interval, ignore_last, reset_flag, by_epoch: as :func:`~fsm_trainer.hooks.text_logger_hook`.

    Raises:
        ImportError: with the install command, when TensorBoard is missing (when the hook is built).
        fsm_trainer.HookError: neither ``log_dir`` nor the run's ``work_dir`` is given.
    """

    def make_writer(ctx: RunContext, per_epoch: bool) -> LogWriter:
        from fsm_trainer.errors import HookError

        summary_writer = _summary_writer()
        if log_dir is None and ctx.work_dir is None:
            msg = f"{name} needs log_dir= or run(..., work_dir=...)"
            raise HookError(msg)
        directory = Path(log_dir) if log_dir is not None else ctx.work_dir / "tf_logs"  # type: ignore[operator]
        sw: list[Any] = []

        def open_(s: TrainState) -> None:
            sw.append(summary_writer(str(directory)))

        def write(s: TrainState, record: LogRecord) -> None:
            w = sw[0]
            for tag, value in scalar_tags(ctx, record).items():
                if isinstance(value, str):
                    w.add_text(tag, value, record.step)
                elif isinstance(value, (int, float)):
                    w.add_scalar(tag, value, record.step)

        def close() -> None:
            while sw:
                sw.pop().close()

        return writer(write, open_, close)

    return logger_hook(make_writer, name=name, interval=interval, ignore_last=ignore_last,
                       reset_flag=reset_flag, by_epoch=by_epoch, priority=priority)
