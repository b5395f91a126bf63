"""The iteration timer: ``data_time`` (waiting for the batch) and ``time`` (whole iteration)."""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook, reachable_only
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def iter_timer_hook(
    *, name: str = "IterTimerHook", priority: int | str = Priority.LOW
) -> Callable[[RunContext], Hook]:
    """mmcv's ``IterTimerHook``: times each train and val iteration into the log buffer.

    ``data_time`` runs from the end of the previous iteration (or the epoch start) to the
    iteration's first point; ``time`` from there to its last point, for both modes.
    """

    def factory(ctx: RunContext) -> Hook:
        update = ctx.log_buffer.update_one
        t = [perf_counter()]

        def start(s: TrainState) -> TrainState:
            t[0] = perf_counter()
            return s

        def before_iter(s: TrainState) -> TrainState:
            update("data_time", perf_counter() - t[0])
            return s

        def after_iter(s: TrainState) -> TrainState:
            now = perf_counter()
            update("time", now - t[0])
            t[0] = now
            return s

        return Hook(name, priority, reachable_only({
            "before_epoch": start,
            "before_train_iter": before_iter, "before_val_iter": before_iter,
            "after_train_iter": after_iter, "after_val_iter": after_iter,
        }, ctx.table))

    return factory
