"""Hooks that ship with fsm_trainer, as factories ``ctx -> Hook`` for :func:`fsm_trainer.run`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook
from fsm_trainer.hooks.ema import ema_hook as ema_hook
from fsm_trainer.hooks.logger import text_logger_hook as text_logger_hook
from fsm_trainer.hooks.lr_updater import lr_updater as lr_updater
from fsm_trainer.hooks.momentum_updater import momentum_updater as momentum_updater
from fsm_trainer.hooks.optimizer import Amp as Amp
from fsm_trainer.hooks.optimizer import optimizer_hook as optimizer_hook
from fsm_trainer.hooks.timer import iter_timer_hook as iter_timer_hook


def default_hooks(
    *, log_interval: int = 10, grad_clip: dict[str, Any] | None = None
) -> list[Callable[[RunContext], Hook]]:
    """The hooks mmcv's ``register_training_hooks`` installs for a plain config.

    Optimizer (ABOVE_NORMAL), iteration timer (LOW) and text logger (VERY_LOW), registered in
    mmcv's order.
    """
    return [optimizer_hook(grad_clip), iter_timer_hook(), text_logger_hook(log_interval)]


__all__ = [
    "Amp", "default_hooks", "ema_hook", "iter_timer_hook", "lr_updater", "momentum_updater",
    "optimizer_hook", "text_logger_hook",
]
