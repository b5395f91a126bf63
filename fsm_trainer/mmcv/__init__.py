"""mmcv 1.7.2's runner API on fsm_trainer.

Change ``from mmcv.runner import ...`` to ``from fsm_trainer.mmcv import ...``.

* :class:`Hook`: mmcv's hook base class; a class hook runs only at the points it overrides,
  with a ``runner`` (:class:`RunnerView`) whose counters are the run's state.
* :data:`HOOKS`, :data:`RUNNERS`, :class:`Registry`, :func:`build_from_cfg`, :func:`build_runner`:
  :data:`HOOKS` shares its entries with the config path (``fsm-trainer train``).
* :class:`EpochBasedRunner`, :class:`IterBasedRunner`: mmcv's constructors, hook registration,
  ``resume``, ``save_checkpoint``, ``run(data_loaders, workflow)``.
* mmcv's hook classes by name (``OptimizerHook``, ``CheckpointHook``, ``StepLrUpdaterHook``,
  ``EvalHook``...), mapped onto fsm_trainer's shipped hooks.

See the README section "Coming from mmcv 1.x" for every difference.
"""

from fsm_trainer.mmcv.hook import STAGES as STAGES
from fsm_trainer.mmcv.hook import Hook as Hook
from fsm_trainer.mmcv.hook import MmcvCompatError as MmcvCompatError
from fsm_trainer.mmcv.hook import RunnerAttributeError as RunnerAttributeError
from fsm_trainer.mmcv.hook import RunnerView as RunnerView
from fsm_trainer.mmcv.hooks import *  # noqa: F403
from fsm_trainer.mmcv.hooks import __all__ as _hooks_all
from fsm_trainer.mmcv.registry import HOOKS as HOOKS
from fsm_trainer.mmcv.registry import RUNNERS as RUNNERS
from fsm_trainer.mmcv.registry import Registry as Registry
from fsm_trainer.mmcv.registry import build_from_cfg as build_from_cfg
from fsm_trainer.mmcv.registry import build_runner as build_runner
from fsm_trainer.mmcv.runner import BaseRunner as BaseRunner
from fsm_trainer.mmcv.runner import EpochBasedRunner as EpochBasedRunner
from fsm_trainer.mmcv.runner import IterBasedRunner as IterBasedRunner
from fsm_trainer.optim import build_optimizer as build_optimizer
from fsm_trainer.priority import Priority as Priority
from fsm_trainer.priority import get_priority as get_priority

__all__ = [
    "HOOKS", "RUNNERS", "STAGES", "BaseRunner", "EpochBasedRunner", "Hook", "IterBasedRunner", "MmcvCompatError",
    "Priority", "Registry", "RunnerAttributeError", "RunnerView", "build_from_cfg", "build_optimizer",
    "build_runner", "get_priority", *_hooks_all,
]
