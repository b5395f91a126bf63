"""The small hooks, by their former common module: each now lives in a module of its own.

:mod:`~fsm_trainer.hooks.empty_cache`, :mod:`~fsm_trainer.hooks.closure`,
:mod:`~fsm_trainer.hooks.profiler`, :mod:`~fsm_trainer.hooks.early_stopping` and
:mod:`~fsm_trainer.hooks.nan_guard`; these names stay importable from here.
"""

from __future__ import annotations

from fsm_trainer.hooks.closure import closure_hook
from fsm_trainer.hooks.early_stopping import EarlyStopping, early_stopping_hook
from fsm_trainer.hooks.empty_cache import empty_cache_hook
from fsm_trainer.hooks.nan_guard import NonFiniteLossError, nan_guard_hook
from fsm_trainer.hooks.profiler import profiler_hook

__all__ = [
    "EarlyStopping", "NonFiniteLossError", "closure_hook", "early_stopping_hook", "empty_cache_hook",
    "nan_guard_hook", "profiler_hook",
]
