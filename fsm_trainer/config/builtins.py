"""What configs can name out of the box: mmcv's hook names, torch optimizers, the digits example.

Hook entries are builders ``(**kwargs) -> Hook | factory``; their keyword arguments are the
config keys. They keep mmcv 1.7.2's names and argument names; hook modules that need an
optional package are registered lazily, by import path, so a config that does not use them
does not import them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from fsm_trainer.context import RunContext
from fsm_trainer.errors import DataError, HookError
from fsm_trainer.hook import Hook
from fsm_trainer.hooks.checkpoint import checkpoint_hook
from fsm_trainer.hooks.optimizer import Amp, optimizer_hook
from fsm_trainer.priority import Priority
from fsm_trainer.registry import DATASETS, HOOKS, LOSSES, MODELS, OPTIMIZER_CONSTRUCTORS, OPTIMIZERS


class DigitsDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """scikit-learn's bundled 8x8 digits (1797 images, nothing downloaded), split by ``seed``.

    Items are ``(pixels as 64 floats in [0, 1], label)``.

    Args:
        split: ``"train"`` or ``"val"``.
        seed: the split's seed; the same seed gives disjoint train and val sets.
        val_fraction: the share of images in ``val``.
    """

    def __init__(self, split: str = "train", seed: int = 0, val_fraction: float = 0.2) -> None:
        if split not in ("train", "val"):
            msg = f"split must be 'train' or 'val', got {split!r}"
            raise DataError(msg)
        if not 0 < val_fraction < 1:
            msg = f"val_fraction must be in (0, 1), got {val_fraction!r}"
            raise DataError(msg)
        from fsm_trainer.examples.digits import load_digits_split

        train, val = load_digits_split(seed, val_fraction)
        self.x, self.y = (train if split == "train" else val).tensors

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def CheckpointHook(
    interval: int = -1,
    by_epoch: bool | None = None,
    save_optimizer: bool = True,
    out_dir: str | None = None,
    max_keep_ckpts: int = -1,
    save_last: bool = True,
    sync_buffer: bool = False,
    *,
    preempt: bool = True,
    name: str = "CheckpointHook",
    priority: int | str = Priority.NORMAL,
) -> Callable[[RunContext], list[Hook]]:
    """mmcv's ``CheckpointHook`` arguments and defaults (``interval=-1``: only the last one).

    ``sync_buffer`` (distributed BatchNorm buffers) is accepted and has no effect here.
    """
    del sync_buffer
    return checkpoint_hook(interval, by_epoch, max_keep_ckpts, save_optimizer,
                           None if out_dir is None else Path(out_dir), save_last,
                           preempt=preempt, name=name, priority=priority)


def Fp16OptimizerHook(
    grad_clip: dict[str, Any] | None = None,
    coalesce: bool = True,
    bucket_size_mb: int = -1,
    loss_scale: float | str | dict[str, Any] = 512.0,
    distributed: bool = True,
    cumulative_iters: int = 1,
    *,
    device_type: str | None = None,
    dtype: str | None = None,
    name: str = "OptimizerHook",
    priority: int | str = Priority.ABOVE_NORMAL,
) -> Callable[[RunContext], Hook]:
    """mmcv's ``Fp16OptimizerHook``: :class:`~fsm_trainer.hooks.Amp` plus the optimizer hook.

    ``coalesce``, ``bucket_size_mb`` and ``distributed`` (gradient all-reduce) have no effect.
    The config builder wraps the model's steps in the same ``Amp`` (the factory's ``amp``).
    """
    del coalesce, bucket_size_mb, distributed
    kw: dict[str, Any] = {"loss_scale": loss_scale, "dtype": dtype}
    if device_type is not None:
        kw["device_type"] = device_type
    amp = Amp(**kw)
    factory = optimizer_hook(grad_clip, cumulative_iters=cumulative_iters, amp=amp, name=name, priority=priority)
    factory.amp = amp  # type: ignore[attr-defined]
    return factory


def GradientCumulativeFp16OptimizerHook(cumulative_iters: int = 1, **kwargs: Any) -> Callable[[RunContext], Hook]:
    """mmcv's ``GradientCumulativeFp16OptimizerHook``: :func:`Fp16OptimizerHook` with accumulation."""
    return Fp16OptimizerHook(cumulative_iters=cumulative_iters, **kwargs)


GradientCumulativeFp16OptimizerHook.__signature__ = inspect.signature(Fp16OptimizerHook)  # type: ignore[attr-defined]

class DefaultOptimizerConstructor:
    """mmcv's ``DefaultOptimizerConstructor``: :func:`fsm_trainer.optim.build_optimizer` with ``paramwise_cfg``.

    The protocol of ``optimizer.constructor``: ``constructor(optimizer_cfg, paramwise_cfg)(model)``
    returns the optimizer; ``optimizer_cfg`` is the config's ``optimizer`` without ``constructor``
    and ``paramwise_cfg`` (its ``type`` as written; resolve it with ``OPTIMIZERS.get``).
    """

    def __init__(self, optimizer_cfg: dict[str, Any], paramwise_cfg: dict[str, Any] | None = None) -> None:
        self.optimizer_cfg = dict(optimizer_cfg)
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        from fsm_trainer.optim import build_optimizer

        cfg = dict(self.optimizer_cfg)
        cfg["type"] = OPTIMIZERS.get(cfg["type"], "optimizer.type")
        if self.paramwise_cfg is not None:
            cfg["paramwise_cfg"] = self.paramwise_cfg
        return build_optimizer(model, cfg)


UNSUPPORTED_LOGGERS: dict[str, str] = {
    "NeptuneLoggerHook": "neptune",
    "DvcliveLoggerHook": "dvclive",
    "ClearMLLoggerHook": "clearml",
    "PaviLoggerHook": "pavi",
    "SegmindLoggerHook": "segmind",
    "MMDetWandbHook": "wandb",
    "MMSegWandbHook": "wandb",
}
"""mmcv's (and mmdet's, mmseg's) loggers fsm_trainer does not provide, with the service each writes to."""


def unsupported_logger(kind: str) -> Callable[..., Any]:
    """A hook builder for ``kind`` that refuses with a :class:`~fsm_trainer.errors.HookError` naming the hook."""
    service = UNSUPPORTED_LOGGERS[kind]

    def build(**kwargs: Any) -> Any:
        alternative = ("WandbLoggerHook (the same records; pip install 'fsm-trainer[wandb]')" if service == "wandb"
                       else "TextLoggerHook, TensorboardLoggerHook, MlflowLoggerHook or WandbLoggerHook")
        msg = (f"{kind} ({service}) is not supported by fsm_trainer; use {alternative}, or register your own "
               f"logger as {kind} in fsm_trainer.registry.HOOKS (fsm_trainer.hooks.logger_hook)")
        raise HookError(msg)

    build.__name__ = kind
    return build


# Hooks of other modules, imported only when a config names them.
_LAZY_HOOKS = {
    "TensorboardLoggerHook": "fsm_trainer.hooks.tensorboard:tensorboard_logger_hook",
    "MlflowLoggerHook": "fsm_trainer.hooks.mlflow:mlflow_logger_hook",
    "ProgressBarHook": "fsm_trainer.hooks.progress:progress_bar_hook",
    "EvalHook": "fsm_trainer.hooks.eval:eval_hook",
    "EmptyCacheHook": "fsm_trainer.hooks.empty_cache:empty_cache_hook",
    "ProfilerHook": "fsm_trainer.hooks.profiler:profiler_hook",
    "EarlyStoppingHook": "fsm_trainer.hooks.early_stopping:early_stopping_hook",
    "NanGuardHook": "fsm_trainer.hooks.nan_guard:nan_guard_hook",
    "TraceHook": "fsm_trainer.hooks.trace:trace_hook",
    "SyncBuffersHook": "fsm_trainer.hooks.dist:sync_buffers_hook",
    "WandbLoggerHook": "fsm_trainer.hooks.wandb:wandb_logger_hook",
}

_done = [False]


def register_builtins() -> None:
    """Fill the registries with what ships with fsm_trainer (idempotent)."""
    if _done[0]:
        return
    _done[0] = True
    from fsm_trainer.examples.digits import DigitsNet
    from fsm_trainer.hooks import ema_hook, iter_timer_hook, text_logger_hook
    from fsm_trainer.optim import torch_optimizers

    for key, fn in {
        "OptimizerHook": optimizer_hook,
        "GradientCumulativeOptimizerHook": optimizer_hook,
        "Fp16OptimizerHook": Fp16OptimizerHook,
        "GradientCumulativeFp16OptimizerHook": GradientCumulativeFp16OptimizerHook,
        "CheckpointHook": CheckpointHook,
        "IterTimerHook": iter_timer_hook,
        "TextLoggerHook": text_logger_hook,
        "EMAHook": ema_hook,
    }.items():
        HOOKS.register(key, force=True, obj=fn)
    for key, target in _LAZY_HOOKS.items():
        module = target.partition(":")[0]
        if importlib_util_find(module):
            HOOKS.register_lazy(key, target)
    for key in UNSUPPORTED_LOGGERS:
        if key not in HOOKS:
            HOOKS.register(key, obj=unsupported_logger(key))
    OPTIMIZER_CONSTRUCTORS.register("DefaultOptimizerConstructor", force=True, obj=DefaultOptimizerConstructor)
    MODELS.register("DigitsNet", force=True, obj=DigitsNet)
    DATASETS.register("DigitsDataset", force=True, obj=DigitsDataset)
    for key, cls in torch_optimizers().items():
        OPTIMIZERS.register(key, force=True, obj=cls)
    for key, loss in torch_losses().items():
        LOSSES.register(key, force=True, obj=loss)


def torch_losses() -> dict[str, type[torch.nn.Module]]:
    """Every loss class of ``torch.nn`` (``CrossEntropyLoss``, ``MSELoss``...), by name.

    >>> "CrossEntropyLoss" in torch_losses() and "MSELoss" in torch_losses()
    True
    """
    from torch.nn.modules.loss import _Loss

    return {name: obj for name in dir(torch.nn) if inspect.isclass(obj := getattr(torch.nn, name))
            and issubclass(obj, _Loss) and not name.startswith("_")}


def importlib_util_find(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


__all__ = ["UNSUPPORTED_LOGGERS", "CheckpointHook", "DefaultOptimizerConstructor", "DigitsDataset", "Fp16OptimizerHook",
           "GradientCumulativeFp16OptimizerHook",
           "register_builtins", "torch_losses", "unsupported_logger"]
