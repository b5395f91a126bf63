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
    start of the iteration's step (the batch has arrived and the ``before_*_iter`` hooks
    ran; see :attr:`RunContext.before_step <fsm_trainer.context.RunContext.before_step>`);
    ``time`` from the end of the previous iteration to the iteration's ``after_*_iter``
    point, for both modes.

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

        def step_starts() -> None:
            update("data_time", perf_counter() - t[0])

        def after_iter(s: TrainState) -> TrainState:
            now = perf_counter()
            update("time", now - t[0])
            t[0] = now
            return s

        # data_time is taken at the step's edge, not at a before_*_iter point: an iteration
        # without other before hooks then costs no extra state and no extra stage call.
        ctx.before_step.append(step_starts)
        return Hook(name, priority, reachable_only({
            "before_epoch": start, "after_train_iter": after_iter, "after_val_iter": after_iter,
        }, ctx.table))

    return factory
