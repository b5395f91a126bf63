"""Hooks that ship with fsm_trainer, as factories ``ctx -> Hook`` for :func:`fsm_trainer.run`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fsm_trainer._lazy import lazy_exports
from fsm_trainer.errors import HookError as HookError
from fsm_trainer.hook import Hook

# Factories named like their own module: bound now, so that importing the submodule later
# cannot leave the package attribute pointing at the module instead of the function.
from fsm_trainer.hooks.lr_updater import lr_updater as lr_updater
from fsm_trainer.hooks.momentum_updater import momentum_updater as momentum_updater

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext
    from fsm_trainer.hooks.checkpoint import checkpoint_hook as checkpoint_hook
    from fsm_trainer.hooks.closure import closure_hook as closure_hook
    from fsm_trainer.hooks.dist import sync_buffers_hook as sync_buffers_hook
    from fsm_trainer.hooks.early_stopping import early_stopping_hook as early_stopping_hook
    from fsm_trainer.hooks.ema import ema_hook as ema_hook
    from fsm_trainer.hooks.empty_cache import empty_cache_hook as empty_cache_hook
    from fsm_trainer.hooks.eval import eval_hook as eval_hook
    from fsm_trainer.hooks.logger import text_logger_hook as text_logger_hook
    from fsm_trainer.hooks.logger_base import logger_hook as logger_hook
    from fsm_trainer.hooks.mlflow import mlflow_logger_hook as mlflow_logger_hook
    from fsm_trainer.hooks.nan_guard import nan_guard_hook as nan_guard_hook
    from fsm_trainer.hooks.optimizer import Amp as Amp
    from fsm_trainer.hooks.optimizer import optimizer_hook as optimizer_hook
    from fsm_trainer.hooks.profiler import profiler_hook as profiler_hook
    from fsm_trainer.hooks.progress import progress_bar_hook as progress_bar_hook
    from fsm_trainer.hooks.tensorboard import tensorboard_logger_hook as tensorboard_logger_hook
    from fsm_trainer.hooks.timer import iter_timer_hook as iter_timer_hook
    from fsm_trainer.hooks.trace import trace_hook as trace_hook

_LAZY: dict[str, str] = {
    "checkpoint_hook": "checkpoint",
    "sync_buffers_hook": "dist",
    "ema_hook": "ema",
    "eval_hook": "eval",
    "text_logger_hook": "logger",
    "logger_hook": "logger_base",
    "lr_updater": "lr_updater",
    "closure_hook": "closure",
    "early_stopping_hook": "early_stopping",
    "empty_cache_hook": "empty_cache",
    "nan_guard_hook": "nan_guard",
    "profiler_hook": "profiler",
    "mlflow_logger_hook": "mlflow",
    "momentum_updater": "momentum_updater",
    "Amp": "optimizer",
    "optimizer_hook": "optimizer",
    "progress_bar_hook": "progress",
    "tensorboard_logger_hook": "tensorboard",
    "iter_timer_hook": "timer",
    "trace_hook": "trace",
}
"""Public name -> the module of :mod:`fsm_trainer.hooks` defining it, imported on first use,
so importing one hook does not import every other hook's dependencies."""


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


def default_hooks(
    *, log_interval: int = 10, grad_clip: dict[str, Any] | None = None
) -> list[Callable[[RunContext], Hook]]:
    """The hooks mmcv's ``register_training_hooks`` installs for a plain config.

    Optimizer (ABOVE_NORMAL), iteration timer (LOW) and text logger (VERY_LOW), registered in
    mmcv's order.
    """
    from fsm_trainer.hooks.logger import text_logger_hook
    from fsm_trainer.hooks.optimizer import optimizer_hook
    from fsm_trainer.hooks.timer import iter_timer_hook

    return [optimizer_hook(grad_clip), iter_timer_hook(), text_logger_hook(log_interval)]


__all__ = [
    "Amp", "HookError", "checkpoint_hook", "closure_hook", "default_hooks", "early_stopping_hook", "ema_hook",
    "empty_cache_hook", "eval_hook", "iter_timer_hook", "logger_hook", "lr_updater", "mlflow_logger_hook",
    "momentum_updater", "nan_guard_hook", "optimizer_hook", "profiler_hook", "progress_bar_hook", "sync_buffers_hook",
    "tensorboard_logger_hook", "text_logger_hook", "trace_hook"
]
