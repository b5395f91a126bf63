"""mmcv 1.7.2's hook classes, with mmcv's constructor arguments, mapped onto fsm_trainer's hooks.

An instance of one of these classes (not subclassed, or subclassed without overriding
anything) runs as the shipped fsm_trainer hook it maps to (``OptimizerHook`` ->
:func:`fsm_trainer.hooks.optimizer_hook`...), with that hook's exactness and resume. A
subclass overriding a point or a customisation method (``get_lr``, ``get_momentum``,
``evaluate``, ``clip_grads``, ``log``, ``_save_checkpoint``...) runs as a class hook
(:func:`fsm_trainer.mmcv.hook.class_hook`) on mmcv's own logic, re-implemented here, so
``super()`` calls work. ``LoggerHook`` is mmcv's base class for custom loggers (implement
``log(runner)``); ``EvalHook`` always runs as a class hook (mmcv's ``dataset.evaluate``
protocol). ``annealing_cos``, ``annealing_linear`` and ``format_param`` are the helpers of
mmcv's ``lr_updater`` module.

One module per family: :mod:`.optimizer`, :mod:`.checkpoint`, :mod:`.logger`,
:mod:`.lr_updater`, :mod:`.momentum_updater`, :mod:`.evaluation`, :mod:`.misc`; every class
is public here, as ``fsm_trainer.mmcv.hooks.<Name>``.
"""

from __future__ import annotations

from fsm_trainer.mmcv.registry import HOOKS

from ._base import MappedHook
from .checkpoint import CheckpointHook
from .evaluation import DistEvalHook, EvalHook, single_gpu_test
from .logger import LoggerHook, MlflowLoggerHook, TensorboardLoggerHook, TextLoggerHook, WandbLoggerHook
from .lr_updater import (
    LR_HOOKS,
    CosineAnnealingLrUpdaterHook,
    CosineRestartLrUpdaterHook,
    CyclicLrUpdaterHook,
    ExpLrUpdaterHook,
    FixedLrUpdaterHook,
    FlatCosineAnnealingLrUpdaterHook,
    InvLrUpdaterHook,
    LinearAnnealingLrUpdaterHook,
    LrUpdaterHook,
    OneCycleLrUpdaterHook,
    PolyLrUpdaterHook,
    StepLrUpdaterHook,
    annealing_cos,
    annealing_linear,
    format_param,
)
from .misc import (
    ClosureHook,
    DistSamplerSeedHook,
    EMAHook,
    EmptyCacheHook,
    IterTimerHook,
    ProfilerHook,
    SyncBuffersHook,
)
from .momentum_updater import (
    MOMENTUM_HOOKS,
    CosineAnnealingMomentumUpdaterHook,
    CyclicMomentumUpdaterHook,
    LinearAnnealingMomentumUpdaterHook,
    MomentumUpdaterHook,
    OneCycleMomentumUpdaterHook,
    StepMomentumUpdaterHook,
)
from .optimizer import (
    Fp16OptimizerHook,
    GradientCumulativeFp16OptimizerHook,
    GradientCumulativeOptimizerHook,
    OptimizerHook,
)

_REGISTERED: tuple[type, ...] = (
    OptimizerHook, GradientCumulativeOptimizerHook, Fp16OptimizerHook, GradientCumulativeFp16OptimizerHook,
    CheckpointHook, IterTimerHook, TextLoggerHook, TensorboardLoggerHook, MlflowLoggerHook, WandbLoggerHook,
    EvalHook, DistEvalHook, EMAHook, EmptyCacheHook, ClosureHook, DistSamplerSeedHook, SyncBuffersHook, ProfilerHook,
    *LR_HOOKS.values(), *MOMENTUM_HOOKS.values(),
)
"""mmcv's registered hook classes, found by name in :data:`fsm_trainer.mmcv.HOOKS`."""

for _cls in (*_REGISTERED, MappedHook, LoggerHook, LrUpdaterHook, MomentumUpdaterHook):
    _cls.__module__ = __name__  # their public home: fsm_trainer.mmcv.hooks.<Name>
for _cls in _REGISTERED:
    HOOKS._builtin_class(_cls.__name__, _cls)

__all__ = [
    "CheckpointHook", "ClosureHook", "CosineAnnealingLrUpdaterHook", "CosineAnnealingMomentumUpdaterHook",
    "CosineRestartLrUpdaterHook", "CyclicLrUpdaterHook", "CyclicMomentumUpdaterHook", "DistEvalHook",
    "DistSamplerSeedHook", "EMAHook", "EmptyCacheHook", "EvalHook", "ExpLrUpdaterHook", "FixedLrUpdaterHook",
    "FlatCosineAnnealingLrUpdaterHook", "Fp16OptimizerHook", "GradientCumulativeFp16OptimizerHook",
    "GradientCumulativeOptimizerHook", "InvLrUpdaterHook", "IterTimerHook", "LinearAnnealingLrUpdaterHook",
    "LinearAnnealingMomentumUpdaterHook", "LoggerHook", "LrUpdaterHook", "MappedHook", "MlflowLoggerHook",
    "MomentumUpdaterHook", "OneCycleLrUpdaterHook", "OneCycleMomentumUpdaterHook", "OptimizerHook",
    "PolyLrUpdaterHook", "ProfilerHook", "StepLrUpdaterHook", "StepMomentumUpdaterHook", "SyncBuffersHook",
    "TensorboardLoggerHook", "TextLoggerHook", "WandbLoggerHook", "annealing_cos", "annealing_linear",
    "format_param", "single_gpu_test",
]
