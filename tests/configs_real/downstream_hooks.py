"""Downstream hooks of the real configs, written as user code registers them (mmdet, mmpose, mmcls).

Configs name the module in ``custom_imports=dict(imports=['tests.configs_real.downstream_hooks'])``;
importing it registers each builder into :data:`fsm_trainer.registry.HOOKS`: ``NumClassCheckHook``
(mmdet/mmseg/mmocr), ``YOLOXLrUpdaterHook`` (``lr_config=dict(policy='YOLOX')``),
``YOLOXModeSwitchHook``, ``SyncNormHook``, ``ExpMomentumEMAHook`` (mmdet's YOLOX),
``SetEpochInfoHook``, ``CheckInvalidLossHook``, ``ModelSetEpochHook`` (mmpose), ``PreciseBNHook`` (mmcls).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook
from fsm_trainer.hooks import ema_hook
from fsm_trainer.registry import HOOKS
from fsm_trainer.state import TrainState


@HOOKS.register(force=True)
def NumClassCheckHook(priority: int | str = "NORMAL") -> Callable[[RunContext], Hook]:
    """mmdet's check that the model's number of classes equals the dataset's ``CLASSES``."""

    def factory(ctx: RunContext) -> Hook:
        def check(s: TrainState) -> TrainState:
            loader = ctx.data_loaders[0]
            classes = getattr(loader.dataset, "CLASSES", None)
            heads = [m for m in ctx.model.modules() if isinstance(m, torch.nn.Linear)]
            if classes is not None and heads and heads[-1].out_features != len(classes):
                msg = f"the model predicts {heads[-1].out_features} classes, the dataset has {len(classes)}"
                raise AssertionError(msg)
            return s

        return Hook("NumClassCheckHook", priority, {"before_train_epoch": check, "before_val_epoch": check})

    return factory


@HOOKS.register(force=True)
def YOLOXLrUpdaterHook(num_last_epochs: int = 15, min_lr_ratio: float = 0.05, warmup: str | None = "exp",
                       warmup_iters: int = 5, warmup_ratio: float = 1.0, warmup_by_epoch: bool = True,
                       by_epoch: bool = False, priority: int | str = "VERY_HIGH") -> Callable[[RunContext], Hook]:
    """mmdet's YOLOX LR: quadratic warmup over ``warmup_iters`` epochs, cosine, then constant for the last epochs."""

    def factory(ctx: RunContext) -> Hook:
        epoch_len = len(ctx.data_loaders[0])
        max_iters = ctx.table.max_epochs * epoch_len
        warm = warmup_iters * epoch_len if warmup_by_epoch else warmup_iters
        last = num_last_epochs * epoch_len

        def before_train_iter(s: TrainState) -> TrainState:
            for g in ctx.optimizer.param_groups:
                base = g.setdefault("initial_lr", g["lr"])
                low = base * min_lr_ratio
                if warmup is not None and s.iter < warm:
                    lr = base * (s.iter / max(warm, 1)) ** 2
                elif s.iter >= max_iters - last:
                    lr = low
                else:
                    t = (s.iter - warm) / max(max_iters - warm - last, 1)
                    lr = low + (base - low) * 0.5 * (1 + math.cos(math.pi * t))
                g["lr"] = lr
            return s

        return Hook("YOLOXLrUpdaterHook", priority, {"before_train_iter": before_train_iter})

    return factory


@HOOKS.register(force=True)
def YOLOXModeSwitchHook(num_last_epochs: int = 15, skip_type_keys: Sequence[str] = (),
                        priority: int | str = "NORMAL") -> Hook:
    """mmdet's switch of the pipeline and losses for the last epochs (nothing to switch for the digits)."""
    return Hook("YOLOXModeSwitchHook", priority, {"before_train_epoch": lambda s: s})


@HOOKS.register(force=True)
def SyncNormHook(num_last_epochs: int = 15, interval: int = 1, priority: int | str = "NORMAL") -> Hook:
    """mmdet's norm-statistics synchronisation (one process: nothing to synchronise)."""
    return Hook("SyncNormHook", priority, {"after_train_epoch": lambda s: s})


@HOOKS.register(force=True)
def ExpMomentumEMAHook(resume_from: str | None = None, momentum: float = 0.0002, total_iter: int = 2000,
                       interval: int = 1, warm_up: int = 100, priority: int | str = "NORMAL") -> Any:
    """mmdet's exponential-momentum EMA, approximated by the shipped EMA hook."""
    return ema_hook(momentum=momentum, interval=interval, warm_up=warm_up, resume_from=resume_from)


@HOOKS.register(force=True)
def SetEpochInfoHook(priority: int | str = "NORMAL") -> Hook:
    """mmdet's hook telling the model the epoch (the digits model does not need it)."""
    return Hook("SetEpochInfoHook", priority, {"before_train_epoch": lambda s: s})


@HOOKS.register(force=True)
def ModelSetEpochHook(priority: int | str = "NORMAL") -> Hook:
    """mmpose's hook telling the model the epoch (the digits model does not need it)."""
    return Hook("ModelSetEpochHook", priority, {"before_train_epoch": lambda s: s})


@HOOKS.register(force=True)
def PreciseBNHook(num_samples: int = 8192, interval: int = 1, priority: int | str = "ABOVE_NORMAL") -> Hook:
    """mmcls' precise BatchNorm statistics (the digits model has no BatchNorm)."""
    return Hook("PreciseBNHook", priority, {"after_train_epoch": lambda s: s})


@HOOKS.register(force=True)
def CheckInvalidLossHook(interval: int = 50, priority: int | str = "NORMAL") -> Hook:
    """mmdet's check, every ``interval`` train iterations, that the loss is finite."""

    def after_train_iter(s: TrainState) -> TrainState:
        if (s.iter + 1) % interval == 0:
            loss = float(s.outputs["log_vars"]["loss"])
            if not math.isfinite(loss):
                msg = f"loss became infinite or NaN at iteration {s.iter + 1}"
                raise AssertionError(msg)
        return s

    return Hook("CheckInvalidLossHook", priority, {"after_train_iter": after_train_iter})
