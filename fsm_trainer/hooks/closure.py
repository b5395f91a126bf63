"""mmcv's ``ClosureHook``: one function at one hook point."""

from __future__ import annotations

from collections.abc import Callable

from fsm_trainer.errors import HookError
from fsm_trainer.hook import POINTS, Hook
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


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
        return s if out is None else out

    return Hook(name or f"ClosureHook({getattr(fn, '__name__', 'fn')}@{point})", priority, {point: call})


__all__ = ["closure_hook"]
