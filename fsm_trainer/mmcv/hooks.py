"""mmcv 1.7.2's hook classes, with mmcv's constructor arguments, mapped onto fsm_trainer's hooks.

An instance of one of these classes (not subclassed, or subclassed without overriding
anything) runs as the shipped fsm_trainer hook it maps to (``OptimizerHook`` ->
:func:`fsm_trainer.hooks.optimizer_hook`...), with that hook's exactness and resume. A
subclass overriding a point or a customisation method (``get_lr``, ``evaluate``,
``clip_grads``...) runs as a class hook (:func:`fsm_trainer.mmcv.hook.class_hook`) on mmcv's
own logic, re-implemented here, so ``super()`` calls work. ``EvalHook`` always runs as a class
hook (mmcv's ``dataset.evaluate`` protocol).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from fsm_trainer.hook import Hook as FsmHook
from fsm_trainer.mmcv.hook import _METHODS, Hook, MmcvCompatError, class_hook, overrides_any, unique_name
from fsm_trainer.mmcv.registry import HOOKS
from fsm_trainer.priority import Priority

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext


def _shipped(name: str) -> Any:
    """A shipped hook factory by its public name in :mod:`fsm_trainer.hooks`.

    Read through the package's lazy ``__getattr__``, which also puts the function back as the
    package attribute when importing a submodule of the same name replaced it by the module.
    """
    import fsm_trainer.hooks as shipped

    return shipped.__getattr__(name)


class MappedHook(Hook):
    """An mmcv hook class that runs as a shipped fsm_trainer hook unless a subclass customises it.

    Subclasses give :meth:`fsm_factory` and list in ``customisable`` the methods besides the
    hook points whose override switches to the class path. ``class_path`` says whether the
    mmcv logic exists here for that path.
    """

    default_priority: ClassVar[int] = int(Priority.NORMAL)
    customisable: ClassVar[tuple[str, ...]] = ()
    class_path: ClassVar[bool] = True
    _mapped: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__:
            cls._mapped = cls

    def fsm_factory(self, name: str, priority: int) -> Callable[[RunContext], FsmHook | list[FsmHook]]:
        raise NotImplementedError

    def customised(self) -> bool:
        """Whether this instance's class (or the instance) overrides what the shipped hook implements."""
        return overrides_any(self, self._mapped, (*_METHODS, *self.customisable))

    def to_fsm(self, ctx: RunContext) -> FsmHook | list[FsmHook]:
        if self.customised():
            if not self.class_path:
                msg = (f"{type(self).__name__} customises {self._mapped.__name__}, which runs here as "
                       f"fsm_trainer's shipped hook; subclass fsm_trainer.mmcv.Hook instead and implement the points")
                raise MmcvCompatError(msg)
            return class_hook(self, ctx)
        priority = int(getattr(self, "priority", self.default_priority))
        name = unique_name(ctx, type(self).__name__)
        return self.fsm_factory(name, priority)(ctx)


# ---------------------------------------------------------------------- optimizer


class OptimizerHook(MappedHook):
    """mmcv's ``OptimizerHook(grad_clip=None, detect_anomalous_params=False)`` (ABOVE_NORMAL)."""

    default_priority = int(Priority.ABOVE_NORMAL)
    customisable = ("clip_grads", "detect_anomalous_parameters")

    def __init__(self, grad_clip: dict[str, Any] | None = None, detect_anomalous_params: bool = False) -> None:
        self.grad_clip = grad_clip
        self.detect_anomalous_params = detect_anomalous_params

    def fsm_factory(self, name: str, priority: int) -> Any:
        optimizer_hook = _shipped("optimizer_hook")

        return optimizer_hook(self.grad_clip, detect_anomalous_params=self.detect_anomalous_params, name=name,
                              priority=priority)

    def clip_grads(self, params: Any) -> Any:
        params = [p for p in params if p.requires_grad and p.grad is not None]
        if params:
            return torch.nn.utils.clip_grad_norm_(params, **(self.grad_clip or {}))
        return None

    def after_train_iter(self, runner: Any) -> None:
        runner.optimizer.zero_grad()
        if self.detect_anomalous_params:
            self.detect_anomalous_parameters(runner.outputs["loss"], runner)
        runner.outputs["loss"].backward()
        if self.grad_clip is not None:
            grad_norm = self.clip_grads(runner.model.parameters())
            if grad_norm is not None:
                runner.log_buffer.update({"grad_norm": float(grad_norm)}, runner.outputs["num_samples"])
        runner.optimizer.step()

    def detect_anomalous_parameters(self, loss: torch.Tensor, runner: Any) -> None:
        seen: set[Any] = set()
        stack = [loss.grad_fn] if loss.grad_fn is not None else []
        while stack:
            fn = stack.pop()
            if fn in seen:
                continue
            seen.add(fn)
            var = getattr(fn, "variable", None)
            if var is not None:
                seen.add(var)
            stack.extend(nxt for nxt, _ in fn.next_functions if nxt is not None)
        for n, p in runner.model.named_parameters():
            if p not in seen and p.requires_grad:
                runner.logger.log(40, f"{n} with shape {p.size()} is not in the computational graph \n")


class GradientCumulativeOptimizerHook(OptimizerHook):
    """mmcv's ``GradientCumulativeOptimizerHook(cumulative_iters=1, **OptimizerHook kwargs)``."""

    class_path = False

    def __init__(self, cumulative_iters: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(cumulative_iters, int) or cumulative_iters <= 0:
            msg = f"cumulative_iters only accepts positive int, but got {type(cumulative_iters)} instead."
            raise ValueError(msg)
        self.cumulative_iters = cumulative_iters

    def fsm_factory(self, name: str, priority: int) -> Any:
        optimizer_hook = _shipped("optimizer_hook")

        return optimizer_hook(self.grad_clip, cumulative_iters=self.cumulative_iters,
                              detect_anomalous_params=self.detect_anomalous_params, name=name, priority=priority)


class Fp16OptimizerHook(OptimizerHook):
    """mmcv's ``Fp16OptimizerHook`` (``grad_clip, coalesce, bucket_size_mb, loss_scale=512., distributed``).

    Runs as :func:`fsm_trainer.hooks.optimizer_hook` with an :class:`~fsm_trainer.hooks.Amp`;
    the runner classes wrap the model's steps in that ``Amp`` (``self.amp``).
    """

    class_path = False

    def __init__(self, grad_clip: dict[str, Any] | None = None, coalesce: bool = True, bucket_size_mb: int = -1,
                 loss_scale: float | str | dict[str, Any] = 512.0, distributed: bool = True,
                 cumulative_iters: int = 1) -> None:
        super().__init__(grad_clip)
        from fsm_trainer.config.builtins import Fp16OptimizerHook as build

        self._factory = build(grad_clip, coalesce, bucket_size_mb, loss_scale, distributed, cumulative_iters)
        self.amp = self._factory.amp  # type: ignore[attr-defined]
        self.loss_scale = loss_scale
        self.cumulative_iters = cumulative_iters

    def fsm_factory(self, name: str, priority: int) -> Any:
        optimizer_hook = _shipped("optimizer_hook")

        return optimizer_hook(self.grad_clip, cumulative_iters=self.cumulative_iters, amp=self.amp, name=name,
                              priority=priority)


class GradientCumulativeFp16OptimizerHook(Fp16OptimizerHook):
    """mmcv's ``GradientCumulativeFp16OptimizerHook(cumulative_iters=1, **Fp16OptimizerHook kwargs)``."""

    def __init__(self, cumulative_iters: int = 1, **kwargs: Any) -> None:
        super().__init__(cumulative_iters=cumulative_iters, **kwargs)


# ---------------------------------------------------------------------- checkpoint, timer, loggers


class CheckpointHook(MappedHook):
    """mmcv's ``CheckpointHook`` arguments; runs as :func:`fsm_trainer.hooks.checkpoint_hook` (directories)."""

    class_path = False

    def __init__(self, interval: int = -1, by_epoch: bool = True, save_optimizer: bool = True,
                 out_dir: str | None = None, max_keep_ckpts: int = -1, save_last: bool = True,
                 sync_buffer: bool = False, file_client_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        del file_client_args
        self.interval, self.by_epoch, self.save_optimizer = interval, by_epoch, save_optimizer
        self.out_dir, self.max_keep_ckpts, self.save_last = out_dir, max_keep_ckpts, save_last
        self.sync_buffer = sync_buffer
        self.args = kwargs

    def fsm_factory(self, name: str, priority: int) -> Any:
        checkpoint_hook = _shipped("checkpoint_hook")

        return checkpoint_hook(self.interval, self.by_epoch, self.max_keep_ckpts, self.save_optimizer,
                               None if self.out_dir is None else Path(self.out_dir), self.save_last, name=name,
                               priority=priority)


class IterTimerHook(MappedHook):
    """mmcv's ``IterTimerHook()`` (LOW)."""

    default_priority = int(Priority.LOW)
    class_path = False

    def fsm_factory(self, name: str, priority: int) -> Any:
        iter_timer_hook = _shipped("iter_timer_hook")

        return iter_timer_hook(name=name, priority=priority)


class TextLoggerHook(MappedHook):
    """mmcv's ``TextLoggerHook`` (VERY_LOW); ``out_dir`` (a copy of the logs elsewhere) is not supported."""

    default_priority = int(Priority.VERY_LOW)
    class_path = False

    def __init__(self, by_epoch: bool = True, interval: int = 10, ignore_last: bool = True, reset_flag: bool = False,
                 interval_exp_name: int = 1000, out_dir: str | None = None,
                 out_suffix: str | tuple[str, ...] = (".log.json", ".log", ".py"), keep_local: bool = True,
                 file_client_args: dict[str, Any] | None = None) -> None:
        del out_suffix, keep_local, file_client_args
        if out_dir is not None:
            msg = "TextLoggerHook(out_dir=...) is not supported: the logs are written to work_dir; copy them yourself"
            raise MmcvCompatError(msg)
        self.by_epoch, self.interval, self.ignore_last = by_epoch, interval, ignore_last
        self.reset_flag, self.interval_exp_name = reset_flag, interval_exp_name

    def fsm_factory(self, name: str, priority: int) -> Any:
        text_logger_hook = _shipped("text_logger_hook")

        return text_logger_hook(self.interval, ignore_last=self.ignore_last, reset_flag=self.reset_flag,
                                by_epoch=self.by_epoch, interval_exp_name=self.interval_exp_name, name=name,
                                priority=priority)


class TensorboardLoggerHook(MappedHook):
    """mmcv's ``TensorboardLoggerHook`` (``log_dir, interval, ignore_last, reset_flag, by_epoch``)."""

    default_priority = int(Priority.VERY_LOW)
    class_path = False

    def __init__(self, log_dir: str | None = None, interval: int = 10, ignore_last: bool = True,
                 reset_flag: bool = False, by_epoch: bool = True) -> None:
        self.log_dir, self.interval, self.ignore_last = log_dir, interval, ignore_last
        self.reset_flag, self.by_epoch = reset_flag, by_epoch

    def fsm_factory(self, name: str, priority: int) -> Any:
        tensorboard_logger_hook = _shipped("tensorboard_logger_hook")

        return tensorboard_logger_hook(self.log_dir, self.interval, ignore_last=self.ignore_last,
                                       reset_flag=self.reset_flag, by_epoch=self.by_epoch, name=name,
                                       priority=priority)


# ---------------------------------------------------------------------- LR and momentum


_WARMUP_KEYS = ("by_epoch", "warmup", "warmup_iters", "warmup_ratio", "warmup_by_epoch")


class LrUpdaterHook(MappedHook):
    """mmcv's ``LrUpdaterHook`` base (VERY_HIGH): subclass it and implement ``get_lr(runner, base_lr)``.

    The policy subclasses (``StepLrUpdaterHook``...) run as :func:`fsm_trainer.hooks.lr_updater`
    unless customised; a customised one runs mmcv's logic below with its ``get_lr``.
    """

    default_priority = int(Priority.VERY_HIGH)
    customisable = ("get_lr", "get_regular_lr", "get_warmup_lr", "_set_lr")
    policy: ClassVar[str | None] = None

    def __init__(self, by_epoch: bool = True, warmup: str | None = None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.1, warmup_by_epoch: bool = False) -> None:
        if warmup is not None:
            if warmup not in ["constant", "linear", "exp"]:
                msg = (f'"{warmup}" is not a supported type for warming up, valid types are "constant", "linear" '
                       'and "exp"')
                raise ValueError(msg)
            if not warmup_iters > 0:
                msg = '"warmup_iters" must be a positive integer'
                raise ValueError(msg)
            if not 0 < warmup_ratio <= 1.0:
                msg = '"warmup_ratio" must be in range (0,1]'
                raise ValueError(msg)
        self.by_epoch = by_epoch
        self.warmup = warmup
        self.warmup_iters: int | None = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.warmup_by_epoch = warmup_by_epoch
        self.warmup_epochs: int | None = None
        if warmup_by_epoch:
            self.warmup_epochs = warmup_iters
            self.warmup_iters = None
        self.base_lr: list[float] | dict[str, list[float]] = []
        self.regular_lr: list[float] | dict[str, list[float]] = []

    def customised(self) -> bool:
        return self.policy is None or super().customised()

    def fsm_factory(self, name: str, priority: int) -> Any:
        lr_updater = _shipped("lr_updater")

        return lr_updater(name=name, priority=priority, **self.lr_config())

    def lr_config(self) -> dict[str, Any]:
        """This hook as an mmcv ``lr_config`` dict."""
        warmup_iters = self.warmup_epochs if self.warmup_by_epoch else self.warmup_iters
        return {"policy": self.policy, "by_epoch": self.by_epoch, "warmup": self.warmup,
                "warmup_iters": warmup_iters, "warmup_ratio": self.warmup_ratio,
                "warmup_by_epoch": self.warmup_by_epoch, **getattr(self, "policy_args", {})}

    def _set_lr(self, runner: Any, lr_groups: Any) -> None:
        if isinstance(runner.optimizer, dict):
            for k, optim in runner.optimizer.items():
                for param_group, lr in zip(optim.param_groups, lr_groups[k], strict=False):
                    param_group["lr"] = lr
        else:
            for param_group, lr in zip(runner.optimizer.param_groups, lr_groups, strict=False):
                param_group["lr"] = lr

    def get_lr(self, runner: Any, base_lr: float) -> float:
        raise NotImplementedError

    def get_regular_lr(self, runner: Any) -> Any:
        if isinstance(runner.optimizer, dict):
            assert isinstance(self.base_lr, dict)
            return {k: [self.get_lr(runner, b) for b in self.base_lr[k]] for k in runner.optimizer}
        assert isinstance(self.base_lr, list)
        return [self.get_lr(runner, b) for b in self.base_lr]

    def get_warmup_lr(self, cur_iters: int) -> Any:
        def warm(regular: list[float]) -> list[float]:
            n = self.warmup_iters
            assert n is not None
            if self.warmup == "constant":
                return [lr * self.warmup_ratio for lr in regular]
            if self.warmup == "linear":
                k = (1 - cur_iters / n) * (1 - self.warmup_ratio)
                return [lr * (1 - k) for lr in regular]
            k = self.warmup_ratio ** (1 - cur_iters / n)
            return [lr * k for lr in regular]

        if isinstance(self.regular_lr, dict):
            return {key: warm(r) for key, r in self.regular_lr.items()}
        return warm(self.regular_lr)

    def before_run(self, runner: Any) -> None:
        if isinstance(runner.optimizer, dict):
            self.base_lr = {}
            for k, optim in runner.optimizer.items():
                for group in optim.param_groups:
                    group.setdefault("initial_lr", group["lr"])
                self.base_lr[k] = [group["initial_lr"] for group in optim.param_groups]
        else:
            for group in runner.optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
            self.base_lr = [group["initial_lr"] for group in runner.optimizer.param_groups]

    def before_train_epoch(self, runner: Any) -> None:
        if self.warmup_iters is None:
            self.warmup_iters = (self.warmup_epochs or 0) * len(runner.data_loader)
        if not self.by_epoch:
            return
        self.regular_lr = self.get_regular_lr(runner)
        self._set_lr(runner, self.regular_lr)

    def before_train_iter(self, runner: Any) -> None:
        cur_iter = runner.iter
        if self.warmup_iters is None:  # an iter-based run has no before_train_epoch
            self.warmup_iters = (self.warmup_epochs or 0) * len(runner.data_loader)
        if not self.by_epoch:
            self.regular_lr = self.get_regular_lr(runner)
            if self.warmup is None or cur_iter >= self.warmup_iters:
                self._set_lr(runner, self.regular_lr)
            else:
                self._set_lr(runner, self.get_warmup_lr(cur_iter))
        elif self.by_epoch:
            if self.warmup is None or cur_iter > self.warmup_iters:
                return
            if cur_iter == self.warmup_iters:
                self._set_lr(runner, self.regular_lr)
            else:
                self._set_lr(runner, self.get_warmup_lr(cur_iter))


def _policy_class(policy: str, base: type, kind: str) -> type:
    def __init__(self: Any, **kwargs: Any) -> None:
        common = {k: kwargs.pop(k) for k in list(kwargs) if k in _WARMUP_KEYS}
        from fsm_trainer.schedules import build_lr_schedule, build_momentum_schedule

        build = build_lr_schedule if kind == "lr" else build_momentum_schedule
        self.schedule = build(policy=policy, **common, **kwargs)  # validates now, as mmcv's constructors
        self.policy_args = kwargs
        base.__init__(self, **common)  # type: ignore[misc]

    def get_lr(self: Any, runner: Any, base_lr: float) -> float:
        from fsm_trainer.schedules import bind

        by_epoch = self.by_epoch
        total = runner.max_epochs if by_epoch else runner.max_iters
        return bind(self.schedule.policy, total)(base_lr, runner.epoch if by_epoch else runner.iter)

    name = f"{policy}{'LrUpdaterHook' if kind == 'lr' else 'MomentumUpdaterHook'}"
    ns: dict[str, Any] = {"__init__": __init__, "policy": policy, "__module__": __name__,
                          "__doc__": f"mmcv's ``{name}`` (``{kind}_config=dict(policy={policy!r}, ...)``)."}
    if kind == "lr":
        ns["get_lr"] = get_lr
    cls = type(name, (base,), ns)
    cls._mapped = cls  # type: ignore[attr-defined]
    return cls


class MomentumUpdaterHook(MappedHook):
    """mmcv's ``MomentumUpdaterHook`` base (HIGH); the policies run as :func:`fsm_trainer.hooks.momentum_updater`.

    Customising a momentum updater (overriding its methods) is not supported here.
    """

    default_priority = int(Priority.HIGH)
    class_path = False
    policy: ClassVar[str | None] = None

    def __init__(self, by_epoch: bool = True, warmup: str | None = None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.9) -> None:
        self.by_epoch, self.warmup, self.warmup_iters, self.warmup_ratio = by_epoch, warmup, warmup_iters, warmup_ratio

    def customised(self) -> bool:
        return self.policy is None or super().customised()

    def fsm_factory(self, name: str, priority: int) -> Any:
        momentum_updater = _shipped("momentum_updater")

        return momentum_updater(name=name, priority=priority, policy=self.policy, by_epoch=self.by_epoch,
                                warmup=self.warmup, warmup_iters=self.warmup_iters, warmup_ratio=self.warmup_ratio,
                                **getattr(self, "policy_args", {}))


_LR_POLICIES = ("Fixed", "Step", "Exp", "Poly", "Inv", "CosineAnnealing", "FlatCosineAnnealing", "CosineRestart",
                "Cyclic", "OneCycle", "LinearAnnealing")
_MOMENTUM_POLICIES = ("Step", "CosineAnnealing", "LinearAnnealing", "Cyclic", "OneCycle")
LR_HOOKS: dict[str, type] = {p: _policy_class(p, LrUpdaterHook, "lr") for p in _LR_POLICIES}
MOMENTUM_HOOKS: dict[str, type] = {p: _policy_class(p, MomentumUpdaterHook, "momentum") for p in _MOMENTUM_POLICIES}
for _cls in (LR_HOOKS["Cyclic"], LR_HOOKS["OneCycle"]):
    _cls.class_path = False  # type: ignore[attr-defined]  # their bases are derived, not the groups' lr

FixedLrUpdaterHook = LR_HOOKS["Fixed"]
StepLrUpdaterHook = LR_HOOKS["Step"]
ExpLrUpdaterHook = LR_HOOKS["Exp"]
PolyLrUpdaterHook = LR_HOOKS["Poly"]
InvLrUpdaterHook = LR_HOOKS["Inv"]
CosineAnnealingLrUpdaterHook = LR_HOOKS["CosineAnnealing"]
FlatCosineAnnealingLrUpdaterHook = LR_HOOKS["FlatCosineAnnealing"]
CosineRestartLrUpdaterHook = LR_HOOKS["CosineRestart"]
CyclicLrUpdaterHook = LR_HOOKS["Cyclic"]
OneCycleLrUpdaterHook = LR_HOOKS["OneCycle"]
LinearAnnealingLrUpdaterHook = LR_HOOKS["LinearAnnealing"]
StepMomentumUpdaterHook = MOMENTUM_HOOKS["Step"]
CosineAnnealingMomentumUpdaterHook = MOMENTUM_HOOKS["CosineAnnealing"]
LinearAnnealingMomentumUpdaterHook = MOMENTUM_HOOKS["LinearAnnealing"]
CyclicMomentumUpdaterHook = MOMENTUM_HOOKS["Cyclic"]
OneCycleMomentumUpdaterHook = MOMENTUM_HOOKS["OneCycle"]


# ---------------------------------------------------------------------- evaluation


def single_gpu_test(model: Any, data_loader: Any) -> list[Any]:
    """mmcv's ``single_gpu_test``: ``model(return_loss=False, **batch)`` for dict batches, else ``model(inputs)``.

    Returns the per-sample results (a batch's result is split along its first dimension).
    """
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    results: list[Any] = []
    try:
        with torch.no_grad():
            for data in data_loader:
                if isinstance(data, dict):
                    result = model(return_loss=False, **data)
                else:
                    inputs = data[0] if isinstance(data, (tuple, list)) else data
                    result = model(inputs)
                results.extend(list(result) if isinstance(result, (torch.Tensor, list, tuple)) else [result])
    finally:
        if was_training:
            model.train()
    return results


class EvalHook(Hook):
    """mmcv's ``EvalHook`` (run at LOW by the runners): ``test_fn(model, dataloader)`` then ``dataset.evaluate``.

    Subclasses override ``evaluate(runner, results)`` (return the key score for ``save_best``),
    as downstream repos do. The best checkpoint is a checkpoint directory
    ``best_<key>_<epoch|iter>_<n>`` written through ``runner.save_checkpoint``.
    """

    rule_map: ClassVar[dict[str, Callable[[float, float], bool]]] = {
        "greater": lambda x, y: x > y, "less": lambda x, y: x < y}
    init_value_map: ClassVar[dict[str, float]] = {"greater": -math.inf, "less": math.inf}
    _default_greater_keys: ClassVar[list[str]] = ["acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU",
                                                  "mAcc", "aAcc"]
    _default_less_keys: ClassVar[list[str]] = ["loss"]

    def __init__(self, dataloader: Any, start: int | None = None, interval: int = 1, by_epoch: bool = True,
                 save_best: str | None = None, rule: str | None = None,
                 test_fn: Callable[[Any, Any], list[Any]] | None = None, greater_keys: Sequence[str] | None = None,
                 less_keys: Sequence[str] | None = None, out_dir: str | None = None,
                 file_client_args: dict[str, Any] | None = None, **eval_kwargs: Any) -> None:
        del file_client_args
        if interval <= 0:
            msg = f"interval must be a positive number, but got {interval}"
            raise ValueError(msg)
        if not isinstance(by_epoch, bool):
            msg = "``by_epoch`` should be a boolean"
            raise TypeError(msg)
        if start is not None and start < 0:
            msg = f"The evaluation start epoch {start} is smaller than 0"
            raise ValueError(msg)
        if not (isinstance(save_best, str) or save_best is None):
            msg = f'"save_best" should be a str or None rather than {type(save_best)}'
            raise TypeError(msg)
        self.dataloader = dataloader
        self.interval = interval
        self.start = start
        self.by_epoch = by_epoch
        self.save_best = save_best
        self.eval_kwargs = eval_kwargs
        self.initial_flag = True
        self.test_fn = test_fn if test_fn is not None else single_gpu_test
        self.greater_keys = list(self._default_greater_keys if greater_keys is None else
                                 ([greater_keys] if isinstance(greater_keys, str) else greater_keys))
        self.less_keys = list(self._default_less_keys if less_keys is None else
                              ([less_keys] if isinstance(less_keys, str) else less_keys))
        self.best_ckpt_path: str | None = None
        if save_best is not None:
            self._init_rule(rule, save_best)
        self.out_dir = out_dir

    def _init_rule(self, rule: str | None, key_indicator: str) -> None:
        if rule not in self.rule_map and rule is not None:
            msg = f"rule must be greater, less or None, but got {rule}."
            raise KeyError(msg)
        if rule is None and key_indicator != "auto":
            lc = key_indicator.lower()
            greater = [k.lower() for k in self.greater_keys]
            less = [k.lower() for k in self.less_keys]
            if lc in greater:
                rule = "greater"
            elif lc in less:
                rule = "less"
            elif any(k in lc for k in greater):
                rule = "greater"
            elif any(k in lc for k in less):
                rule = "less"
            else:
                msg = f"Cannot infer the rule for key {key_indicator}, thus a specific rule must be specified."
                raise ValueError(msg)
        self.rule = rule
        self.key_indicator = key_indicator
        if rule is not None:
            self.compare_func = self.rule_map[rule]

    def to_fsm(self, ctx: RunContext) -> FsmHook | list[FsmHook]:
        if not hasattr(self, "priority"):
            self.priority = int(Priority.LOW)
        return class_hook(self, ctx)

    def before_run(self, runner: Any) -> None:
        work_dir = runner.work_dir
        if not self.out_dir:
            self.out_dir = work_dir
        elif work_dir is not None and self.out_dir != work_dir:
            self.out_dir = str(Path(self.out_dir) / Path(work_dir).name)
        if self.save_best is not None:
            runner.meta.setdefault("hook_msgs", {})
            self.best_ckpt_path = runner.meta["hook_msgs"].get("best_ckpt", None)

    def before_train_iter(self, runner: Any) -> None:
        if self.by_epoch or not self.initial_flag:
            return
        if self.start is not None and runner.iter >= self.start:
            self.after_train_iter(runner)
        self.initial_flag = False

    def before_train_epoch(self, runner: Any) -> None:
        if not (self.by_epoch and self.initial_flag):
            return
        if self.start is not None and runner.epoch >= self.start:
            self.after_train_epoch(runner)
        self.initial_flag = False

    def after_train_iter(self, runner: Any) -> None:
        if not self.by_epoch and self._should_evaluate(runner):
            from fsm_trainer.hooks.logger_base import flush_loggers

            ctx = getattr(runner, "_ctx", None)
            if ctx is not None:
                flush_loggers(ctx, runner._state(), "after_train_iter")
            runner.log_buffer.clear()
            self._do_evaluate(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if self.by_epoch and self._should_evaluate(runner):
            self._do_evaluate(runner)

    def _do_evaluate(self, runner: Any) -> None:
        results = self.test_fn(runner.model, self.dataloader)
        runner.log_buffer.output["eval_iter_num"] = len(self.dataloader)
        key_score = self.evaluate(runner, results)
        if self.save_best and key_score:
            self._save_ckpt(runner, key_score)

    def _should_evaluate(self, runner: Any) -> bool:
        if self.by_epoch:
            current, check = runner.epoch, self.every_n_epochs
        else:
            current, check = runner.iter, self.every_n_iters
        if self.start is None:
            return bool(check(runner, self.interval))
        if current + 1 < self.start:
            return False
        return not (current + 1 - self.start) % self.interval

    def _save_ckpt(self, runner: Any, key_score: float) -> None:
        from fsm_trainer.checkpoint import remove_checkpoint

        if self.by_epoch:
            current, cur_type, cur_time = f"epoch_{runner.epoch + 1}", "epoch", runner.epoch + 1
        else:
            current, cur_type, cur_time = f"iter_{runner.iter + 1}", "iter", runner.iter + 1
        assert self.rule is not None
        best_score = runner.meta["hook_msgs"].get("best_score", self.init_value_map[self.rule])
        if self.compare_func(key_score, best_score):
            best_score = key_score
            runner.meta["hook_msgs"]["best_score"] = best_score
            previous = self.best_ckpt_path
            name = f"best_{self.key_indicator}_{current}"
            assert self.out_dir is not None
            path = runner.save_checkpoint(self.out_dir, filename_tmpl=name, create_symlink=False)
            self.best_ckpt_path = str(path)
            runner.meta["hook_msgs"]["best_ckpt"] = self.best_ckpt_path
            if previous and previous != self.best_ckpt_path and Path(previous).exists():
                remove_checkpoint(previous)
                runner.logger.info(f"The previous best checkpoint {previous} was removed")
            runner.logger.info(f"Now best checkpoint is saved as {name}.")
            runner.logger.info(f"Best {self.key_indicator} is {best_score:0.4f} at {cur_time} {cur_type}.")

    def evaluate(self, runner: Any, results: list[Any]) -> float | None:
        eval_res = self.dataloader.dataset.evaluate(results, logger=runner.logger, **self.eval_kwargs)
        for name, val in eval_res.items():
            runner.log_buffer.output[name] = val
        runner.log_buffer.ready = True
        if self.save_best is not None:
            if not eval_res:
                warnings.warn("Since `eval_res` is an empty dict, the behavior to save the best checkpoint will be "
                              "skipped in this evaluation.", stacklevel=2)
                return None
            if self.key_indicator == "auto":
                self._init_rule(self.rule, next(iter(eval_res)))
            return eval_res[self.key_indicator]  # type: ignore[no-any-return]
        return None


class DistEvalHook(EvalHook):
    """mmcv's ``DistEvalHook``: in one process, :class:`EvalHook` (extra arguments accepted)."""

    def __init__(self, dataloader: Any, start: int | None = None, interval: int = 1, by_epoch: bool = True,
                 save_best: str | None = None, rule: str | None = None,
                 test_fn: Callable[[Any, Any], list[Any]] | None = None, greater_keys: Sequence[str] | None = None,
                 less_keys: Sequence[str] | None = None, broadcast_bn_buffer: bool = True, tmpdir: str | None = None,
                 gpu_collect: bool = False, out_dir: str | None = None,
                 file_client_args: dict[str, Any] | None = None, **eval_kwargs: Any) -> None:
        from fsm_trainer.dist import get_dist_info

        if get_dist_info()[1] > 1:
            msg = "DistEvalHook with several ranks is not supported here; use fsm_trainer.hooks.eval_hook"
            raise MmcvCompatError(msg)
        del broadcast_bn_buffer, tmpdir, gpu_collect
        super().__init__(dataloader, start, interval, by_epoch, save_best, rule, test_fn, greater_keys, less_keys,
                         out_dir, file_client_args, **eval_kwargs)


# ---------------------------------------------------------------------- misc


class EMAHook(MappedHook):
    """mmcv's ``EMAHook(momentum=0.0002, interval=1, warm_up=100, resume_from=None)``."""

    class_path = False

    def __init__(self, momentum: float = 0.0002, interval: int = 1, warm_up: int = 100,
                 resume_from: str | None = None) -> None:
        self.momentum, self.interval, self.warm_up, self.checkpoint = momentum, interval, warm_up, resume_from

    def fsm_factory(self, name: str, priority: int) -> Any:
        ema_hook = _shipped("ema_hook")

        return ema_hook(self.momentum, self.interval, self.warm_up, self.checkpoint, name=name, priority=priority)


class EmptyCacheHook(MappedHook):
    """mmcv's ``EmptyCacheHook(before_epoch=False, after_epoch=True, after_iter=False)``."""

    class_path = False

    def __init__(self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False) -> None:
        self._before_epoch, self._after_epoch, self._after_iter = before_epoch, after_epoch, after_iter

    def fsm_factory(self, name: str, priority: int) -> Any:
        empty_cache_hook = _shipped("empty_cache_hook")

        return empty_cache_hook(self._before_epoch, self._after_epoch, self._after_iter, name=name, priority=priority)


class ClosureHook(Hook):
    """mmcv's ``ClosureHook(fn_name, fn)``: ``fn(runner)`` at the point ``fn_name``."""

    def __init__(self, fn_name: str, fn: Callable[[Any], None]) -> None:
        if not hasattr(self, fn_name) or fn_name.startswith("_"):
            msg = f"{fn_name!r} is not a hook point"
            raise ValueError(msg)
        if not callable(fn):
            msg = f"fn must be callable, got {type(fn)}"
            raise TypeError(msg)
        setattr(self, fn_name, fn)


class DistSamplerSeedHook(MappedHook):
    """mmcv's ``DistSamplerSeedHook``: nothing to do, the runner sets the sampler's epoch itself."""

    default_priority = int(Priority.NORMAL)

    def fsm_factory(self, name: str, priority: int) -> Any:
        return lambda ctx: FsmHook(name, priority, {})


class SyncBuffersHook(MappedHook):
    """mmcv's ``SyncBuffersHook(distributed=True)``."""

    class_path = False

    def __init__(self, distributed: bool = True) -> None:
        self.distributed = distributed

    def fsm_factory(self, name: str, priority: int) -> Any:
        sync_buffers_hook = _shipped("sync_buffers_hook")

        return sync_buffers_hook(self.distributed, name=name, priority=priority)


for _name, _obj in [
    ("OptimizerHook", OptimizerHook), ("GradientCumulativeOptimizerHook", GradientCumulativeOptimizerHook),
    ("Fp16OptimizerHook", Fp16OptimizerHook),
    ("GradientCumulativeFp16OptimizerHook", GradientCumulativeFp16OptimizerHook),
    ("CheckpointHook", CheckpointHook), ("IterTimerHook", IterTimerHook), ("TextLoggerHook", TextLoggerHook),
    ("TensorboardLoggerHook", TensorboardLoggerHook), ("EvalHook", EvalHook), ("DistEvalHook", DistEvalHook),
    ("EMAHook", EMAHook), ("EmptyCacheHook", EmptyCacheHook), ("ClosureHook", ClosureHook),
    ("DistSamplerSeedHook", DistSamplerSeedHook), ("SyncBuffersHook", SyncBuffersHook),
    *((c.__name__, c) for c in LR_HOOKS.values()), *((c.__name__, c) for c in MOMENTUM_HOOKS.values()),
]:
    HOOKS._builtin_class(_name, _obj)

__all__ = [
    "CheckpointHook", "ClosureHook", "CosineAnnealingLrUpdaterHook", "CosineAnnealingMomentumUpdaterHook",
    "CosineRestartLrUpdaterHook", "CyclicLrUpdaterHook", "CyclicMomentumUpdaterHook", "DistEvalHook",
    "DistSamplerSeedHook", "EMAHook", "EmptyCacheHook", "EvalHook", "ExpLrUpdaterHook", "FixedLrUpdaterHook",
    "FlatCosineAnnealingLrUpdaterHook", "Fp16OptimizerHook", "GradientCumulativeFp16OptimizerHook",
    "GradientCumulativeOptimizerHook", "InvLrUpdaterHook", "IterTimerHook", "LinearAnnealingLrUpdaterHook",
    "LinearAnnealingMomentumUpdaterHook", "LrUpdaterHook", "MappedHook", "MomentumUpdaterHook",
    "OneCycleLrUpdaterHook", "OneCycleMomentumUpdaterHook", "OptimizerHook", "PolyLrUpdaterHook",
    "StepLrUpdaterHook", "StepMomentumUpdaterHook", "SyncBuffersHook", "TensorboardLoggerHook", "TextLoggerHook",
    "single_gpu_test",
]
