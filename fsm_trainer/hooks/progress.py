"""A tqdm progress bar for interactive runs (mmcv has none; Ignite's ``ProgressBar`` is the model).

Needs ``tqdm`` (``pip install tqdm``); it is imported when the hook is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook, HookFn, reachable_only
from fsm_trainer.hooks.logger import format_line
from fsm_trainer.hooks.logger_base import LogRecord, logger_hook, writer
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError as exc:
        msg = "progress_bar_hook needs tqdm: pip install tqdm"
        raise ImportError(msg) from exc
    return tqdm


def progress_bar_hook(
    interval: int = 10,
    *,
    file: IO[str] | None = None,
    val: bool = True,
    by_epoch: bool | None = None,
    name: str = "ProgressBarHook",
    priority: int | str = Priority.VERY_LOW,
    **tqdm_kwargs: Any,
) -> Callable[[RunContext], list[Hook]]:
    """A progress bar per train epoch (per val epoch with ``val``), or one for an iter-based run.

    The bar advances every iteration; every ``interval`` iterations its postfix shows the
    averaged values (the logger rules of :mod:`fsm_trainer.hooks.logger_base`), and val and
    eval records are printed above it in the text logger's format. It is a logger: use it
    alongside the text logger or instead of it.

    Args:
        interval: refresh the averaged values every this many iterations.
        file: where the bar is drawn (default: stderr, as tqdm).
        val: also draw a bar for each val epoch (epoch-based runs).
        by_epoch: as :func:`~fsm_trainer.hooks.text_logger_hook`.
        tqdm_kwargs: passed to ``tqdm`` (``leave``, ``ncols``, ``disable``...).

    Each iteration costs one ``tqdm.update`` (about a microsecond): meant for interactive use,
    not for benchmarks.
    """

    def factory(ctx: RunContext) -> list[Hook]:
        tqdm = _tqdm()
        bar: list[Any] = []
        table = ctx.table
        per_epoch = table.by == "epoch" if by_epoch is None else by_epoch

        def start(desc: str, total: int | None, initial: int = 0) -> None:
            finish()
            bar.append(tqdm(total=total, initial=initial, desc=desc, file=file, dynamic_ncols=True, **tqdm_kwargs))

        def finish() -> None:
            while bar:
                bar.pop().close()

        def tick(s: TrainState) -> TrainState:
            if bar:
                bar[0].update(1)
            return s

        def write(s: TrainState, record: LogRecord) -> None:
            if record.mode == "train" and bar:
                bar[0].set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in record.values.items()
                                    if k not in ("time", "data_time")}, refresh=False)
                return
            line = format_line({"mode": record.mode, "epoch": record.epoch, "iter": record.iter, **record.values},
                               by_epoch=per_epoch, loader_len=None, max_iters=ctx.max_iters, eta=None)
            tqdm.write(line, file=file)

        def end(s: TrainState) -> TrainState:
            finish()
            return s

        on: dict[str, HookFn] = {"after_train_iter": tick, "after_run": end}
        if table.by == "epoch":

            def train_epoch(s: TrainState) -> TrainState:
                start(f"Epoch {s.epoch + 1}", ctx.loader_len(s.phase))
                return s

            def val_epoch(s: TrainState) -> TrainState:
                start(f"Epoch {s.epoch} (val)", ctx.loader_len(s.phase))
                return s

            on.update(before_train_epoch=train_epoch, after_train_epoch=end)
            if val:
                on.update(before_val_epoch=val_epoch, after_val_iter=tick, after_val_epoch=end)
        else:

            def run_bar(s: TrainState) -> TrainState:
                start("Iter", ctx.max_iters, s.iter)
                return s

            on["before_epoch"] = run_bar
        ctx.on_exit.append(finish)
        logger = logger_hook(lambda c, e: writer(write), name=name, interval=interval, by_epoch=by_epoch,
                             priority=priority)(ctx)
        # Same priority, registered after the logger: the bar exists when the logger writes, and
        # closes after it has written the epoch's last record.
        return [logger, Hook(f"{name}.bar", priority, reachable_only(on, table))]

    return factory
