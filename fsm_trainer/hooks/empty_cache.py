"""mmcv's ``EmptyCacheHook``: release the accelerator's cached memory at chosen points."""

from __future__ import annotations

from collections.abc import Callable

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook, HookFn, reachable_only
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def empty_cache_hook(
    before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False,
    *, name: str = "EmptyCacheHook", priority: int | str = Priority.NORMAL,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``EmptyCacheHook``: ``torch.cuda.empty_cache()`` at the chosen points.

    ``before_epoch``/``after_epoch`` are the generic points (every train and val epoch of an
    epoch-based run; the start and end of an iter-based run); ``after_iter`` is every train
    and val iteration. It releases the blocks CUDA's caching allocator holds unused (the
    run's device is CUDA's current device during the loop); on Apple's MPS it calls
    ``torch.mps.empty_cache()``. Where neither is available (decided once, when the run
    starts) the hook has no functions: nothing runs at its points.
    """

    def factory(ctx: RunContext) -> Hook:
        import torch

        release: Callable[[], None] | None = None
        if torch.cuda.is_available():
            release = torch.cuda.empty_cache
        elif torch.backends.mps.is_available():
            release = torch.mps.empty_cache
        if release is None:
            return Hook(name, priority, {})
        fn = release

        def empty(s: TrainState) -> TrainState:
            fn()
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


__all__ = ["empty_cache_hook"]
