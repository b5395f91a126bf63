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

    Both are host clocks (``perf_counter``); nothing here waits for the device. On an
    accelerator, where steps log tensors and no host sync happens between logging points,
    an iteration's ``time`` is how long the host took to queue its work: the host runs ahead
    of the device by up to the depth of the launch queue and catches up when a logging point
    reads the interval's values back. That wait is counted in the next iteration's
    ``data_time`` and ``time``, so over a run the totals (and the text logger's ``eta``) are
    wall-clock exact, while a single interval's average can be off by about one queue's worth
    of work. A loader that keeps up shows ``data_time`` near zero except right after a
    logging point.
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
