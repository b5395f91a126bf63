"""mmcv's momentum updater hooks: ``MomentumUpdaterHook`` and the five ``<Policy>MomentumUpdaterHook`` classes.

The policy classes take mmcv's arguments, validated by
:func:`fsm_trainer.schedules.build_momentum_schedule`. Unsubclassed they run as
:func:`fsm_trainer.hooks.momentum_updater`; a subclass overriding a point or
``get_momentum``... runs mmcv's logic below (momentum written to ``momentum`` for SGD-like
groups, ``betas[0]`` for Adam-like ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from fsm_trainer.mmcv.hook import MmcvCompatError
from fsm_trainer.priority import Priority
from fsm_trainer.schedules import ANNEAL

from ._base import MappedHook, shipped
from .lr_updater import (
    CyclicAttrs,
    adopt_cyclic,
    annealing_cos,
    annealing_linear,
    check_warmup,
    cyclic_phases,
    cyclic_value,
    for_groups,
    format_param,
)

_COMMON = ("by_epoch", "warmup", "warmup_iters", "warmup_ratio")


def _validate(policy: str, common: dict[str, Any], policy_args: dict[str, Any]) -> Any:
    """The :class:`~fsm_trainer.schedules.Schedule` of a momentum config (raises for a bad one)."""
    from fsm_trainer.schedules import build_momentum_schedule

    return build_momentum_schedule(policy=policy, **common, **policy_args)


def _split(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in list(kwargs) if k in _COMMON}


class MomentumUpdaterHook(MappedHook):
    """mmcv's ``MomentumUpdaterHook(by_epoch=True, warmup=None, warmup_iters=0, warmup_ratio=0.9)`` (HIGH).

    Subclass it and implement ``get_momentum(runner, base_momentum)``, as for mmcv. Its
    ``state_dict`` keeps ``regular_momentum`` (the value warmup scales), so a run resumed in
    the middle of a warmed-up epoch goes on exactly.
    """

    default_priority = int(Priority.HIGH)
    customisable: ClassVar[tuple[str, ...]] = ("get_momentum", "get_regular_momentum", "get_warmup_momentum",
                                               "_set_momentum")
    policy: ClassVar[str | None] = None

    def __init__(self, by_epoch: bool = True, warmup: str | None = None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.9) -> None:
        check_warmup(warmup, warmup_iters, warmup_ratio)
        self.by_epoch = by_epoch
        self.warmup = warmup
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.base_momentum: list[Any] | dict[str, list[Any]] = []
        self.regular_momentum: list[float] | dict[str, list[float]] = []

    def customised(self) -> bool:
        return self.policy is None or super().customised()

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("momentum_updater")(name=name, priority=priority, policy=self.policy, by_epoch=self.by_epoch,
                                           warmup=self.warmup, warmup_iters=self.warmup_iters,
                                           warmup_ratio=self.warmup_ratio, **getattr(self, "policy_args", {}))

    def state_dict(self) -> dict[str, Any]:
        """``regular_momentum``: the momentum warmup scales, set at the start of each epoch with ``by_epoch``."""
        return {"regular_momentum": self.regular_momentum}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back ``regular_momentum``."""
        self.regular_momentum = state.get("regular_momentum", self.regular_momentum)

    @staticmethod
    def _write(group: dict[str, Any], momentum: float) -> None:
        if "momentum" in group:
            group["momentum"] = momentum
        elif "betas" in group:
            group["betas"] = (momentum, group["betas"][1])

    def _set_momentum(self, runner: Any, momentum_groups: Any) -> None:
        if isinstance(runner.optimizer, dict):
            for k, optim in runner.optimizer.items():
                for group, mom in zip(optim.param_groups, momentum_groups[k], strict=False):
                    self._write(group, mom)
        else:
            for group, mom in zip(runner.optimizer.param_groups, momentum_groups, strict=False):
                self._write(group, mom)

    def get_momentum(self, runner: Any, base_momentum: Any) -> float:
        msg = f"{type(self).__name__} must implement get_momentum(runner, base_momentum)"
        raise NotImplementedError(msg)

    def get_regular_momentum(self, runner: Any) -> Any:
        if isinstance(runner.optimizer, dict):
            assert isinstance(self.base_momentum, dict)
            return {k: [self.get_momentum(runner, b) for b in self.base_momentum[k]] for k in runner.optimizer}
        assert isinstance(self.base_momentum, list)
        return [self.get_momentum(runner, b) for b in self.base_momentum]

    def get_warmup_momentum(self, cur_iters: int) -> Any:
        def warm(regular: list[float]) -> list[float]:
            if self.warmup == "constant":
                return [m / self.warmup_ratio for m in regular]
            if self.warmup == "linear":
                k = (1 - cur_iters / self.warmup_iters) * (1 - self.warmup_ratio)
                return [m / (1 - k) for m in regular]
            if self.warmup == "exp":
                k = self.warmup_ratio ** (1 - cur_iters / self.warmup_iters)
                return [m / k for m in regular]
            msg = f"warmup must be 'constant', 'linear' or 'exp', got {self.warmup!r}"
            raise MmcvCompatError(msg)

        return for_groups(warm, self.regular_momentum)

    def before_run(self, runner: Any) -> None:
        def bases(optim: Any) -> list[Any]:
            for group in optim.param_groups:
                group.setdefault("initial_momentum", group["momentum"] if "momentum" in group else group["betas"][0])
            return [group["initial_momentum"] for group in optim.param_groups]

        if isinstance(runner.optimizer, dict):
            self.base_momentum = {k: bases(optim) for k, optim in runner.optimizer.items()}
        else:
            self.base_momentum = bases(runner.optimizer)

    def before_train_epoch(self, runner: Any) -> None:
        if not self.by_epoch:
            return
        self.regular_momentum = self.get_regular_momentum(runner)
        self._set_momentum(runner, self.regular_momentum)

    def before_train_iter(self, runner: Any) -> None:
        cur_iter = runner.iter
        if not self.by_epoch:
            self.regular_momentum = self.get_regular_momentum(runner)
            if self.warmup is None or cur_iter >= self.warmup_iters:
                self._set_momentum(runner, self.regular_momentum)
            else:
                self._set_momentum(runner, self.get_warmup_momentum(cur_iter))
        elif self.warmup is not None and cur_iter <= self.warmup_iters:
            if cur_iter == self.warmup_iters:
                self._set_momentum(runner, self.regular_momentum)
            else:
                self._set_momentum(runner, self.get_warmup_momentum(cur_iter))

    def _progress(self, runner: Any) -> tuple[int, int]:
        if self.by_epoch:
            return runner.epoch, runner.max_epochs
        return runner.iter, runner.max_iters


class StepMomentumUpdaterHook(MomentumUpdaterHook):
    """mmcv's ``StepMomentumUpdaterHook(step, gamma=0.5, min_momentum=None, **warmup)``."""

    policy = "Step"

    def __init__(self, step: int | list[int], gamma: float = 0.5, min_momentum: float | None = None,
                 **kwargs: Any) -> None:
        common = _split(kwargs)
        self.policy_args = {"step": step, "gamma": gamma, "min_momentum": min_momentum, **kwargs}
        self.schedule = _validate("Step", common, self.policy_args)
        self.step, self.gamma, self.min_momentum = step, gamma, min_momentum
        super().__init__(**common)

    def get_momentum(self, runner: Any, base_momentum: float) -> float:
        progress = runner.epoch if self.by_epoch else runner.iter
        if isinstance(self.step, int):
            exp = progress // self.step
        else:
            exp = len(self.step)
            for i, s in enumerate(self.step):
                if progress < s:
                    exp = i
                    break
        momentum: float = base_momentum * (self.gamma**exp)
        return momentum if self.min_momentum is None else max(momentum, self.min_momentum)


class _Annealing(MomentumUpdaterHook):
    anneal: ClassVar[Callable[..., float]]

    def __init__(self, min_momentum: float | None = None, min_momentum_ratio: float | None = None,
                 **kwargs: Any) -> None:
        common = _split(kwargs)
        assert self.policy is not None
        self.policy_args = {"min_momentum": min_momentum, "min_momentum_ratio": min_momentum_ratio, **kwargs}
        self.schedule = _validate(self.policy, common, self.policy_args)
        self.min_momentum, self.min_momentum_ratio = min_momentum, min_momentum_ratio
        super().__init__(**common)

    def get_momentum(self, runner: Any, base_momentum: float) -> float:
        progress, max_progress = self._progress(runner)
        if self.min_momentum_ratio is not None:
            target = base_momentum * self.min_momentum_ratio
        else:
            assert self.min_momentum is not None
            target = self.min_momentum
        return type(self).anneal(base_momentum, target, progress / max_progress)


class CosineAnnealingMomentumUpdaterHook(_Annealing):
    """mmcv's ``CosineAnnealingMomentumUpdaterHook(min_momentum=None, min_momentum_ratio=None, **warmup)``."""

    policy = "CosineAnnealing"
    anneal = staticmethod(annealing_cos)


class LinearAnnealingMomentumUpdaterHook(_Annealing):
    """mmcv's ``LinearAnnealingMomentumUpdaterHook(min_momentum=None, min_momentum_ratio=None, **warmup)``."""

    policy = "LinearAnnealing"
    anneal = staticmethod(annealing_linear)


class CyclicMomentumUpdaterHook(MomentumUpdaterHook, CyclicAttrs):
    """mmcv's ``CyclicMomentumUpdaterHook(by_epoch=False, target_ratio=(0.85 / 0.95, 1.), cyclic_times=1,
    step_ratio_up=0.4, anneal_strategy='cos', gamma=1., **warmup)``.

    ``before_run`` splits ``max_iters // cyclic_times`` iterations into a phase towards
    ``target_ratio[0]`` and one towards ``target_ratio[1]`` times the base momentum
    (``momentum_phases``).
    """

    policy = "Cyclic"

    def __init__(self, by_epoch: bool = False, target_ratio: float | tuple[float, ...] = (0.85 / 0.95, 1.0),
                 cyclic_times: int = 1, step_ratio_up: float = 0.4, anneal_strategy: str = "cos",
                 gamma: float = 1.0, **kwargs: Any) -> None:

        common = _split(kwargs)
        self.policy_args = {"target_ratio": target_ratio, "cyclic_times": cyclic_times,
                            "step_ratio_up": step_ratio_up, "anneal_strategy": anneal_strategy, "gamma": gamma,
                            **kwargs}
        self.schedule = _validate("Cyclic", {"by_epoch": by_epoch, **common}, self.policy_args)
        adopt_cyclic(self, self.schedule.policy)
        self.momentum_phases: list[list[Any]] = []
        super().__init__(by_epoch=by_epoch, **common)

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        self.max_iter_per_phase, self.momentum_phases = cyclic_phases(runner.max_iters, self.cyclic_times,
                                                                      self.step_ratio_up, self.target_ratio)

    def get_momentum(self, runner: Any, base_momentum: float) -> float:
        return cyclic_value(self, base_momentum, runner.iter, self.momentum_phases)


class OneCycleMomentumUpdaterHook(MomentumUpdaterHook):
    """mmcv's ``OneCycleMomentumUpdaterHook(base_momentum=0.85, max_momentum=0.95, pct_start=0.3,
    anneal_strategy='cos', three_phase=False, **warmup)`` (``by_epoch=False`` only).

    ``before_run`` writes ``max_momentum`` into each group, records the group's
    ``base_momentum`` and ``max_momentum`` in it, and sets ``momentum_phases``;
    ``get_momentum(runner, param_group)`` takes the param group (mmcv's signature).
    """

    policy = "OneCycle"

    def __init__(self, base_momentum: float | list[float] | dict[str, Any] = 0.85,
                 max_momentum: float | list[float] | dict[str, Any] = 0.95, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", three_phase: bool = False, **kwargs: Any) -> None:
        common = _split(kwargs)
        common.setdefault("by_epoch", False)
        self.policy_args = {"base_momentum": base_momentum, "max_momentum": max_momentum, "pct_start": pct_start,
                            "anneal_strategy": anneal_strategy, "three_phase": three_phase, **kwargs}
        self.schedule = _validate("OneCycle", common, self.policy_args)
        self._base_momentum = base_momentum
        self._max_momentum = max_momentum
        self.pct_start = pct_start
        self.anneal_func: Callable[[float, float, float], float] = ANNEAL[anneal_strategy]
        self.three_phase = three_phase
        self.momentum_phases: list[dict[str, Any]] = []
        super().__init__(**common)

    def before_run(self, runner: Any) -> None:
        optimizers = runner.optimizer if isinstance(runner.optimizer, dict) else {
            type(runner.optimizer).__name__: runner.optimizer}
        for k, optim in optimizers.items():
            if "momentum" not in optim.defaults and "betas" not in optim.defaults:
                msg = f"{type(self).__name__}: optimizer {k!r} has neither 'momentum' nor 'betas'"
                raise MmcvCompatError(msg)
            self.use_beta1 = "betas" in optim.defaults
            lows = format_param(k, optim, self._base_momentum)
            highs = format_param(k, optim, self._max_momentum)
            for group, low, high in zip(optim.param_groups, lows, highs, strict=True):
                if self.use_beta1:
                    group["betas"] = (high, group["betas"][1])
                else:
                    group["momentum"] = high
                group["base_momentum"] = low
                group["max_momentum"] = high
        n, pct = runner.max_iters, self.pct_start
        if self.three_phase:
            self.momentum_phases = [
                {"end_iter": float(pct * n) - 1, "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_iter": float(2 * pct * n) - 2, "start_momentum": "base_momentum",
                 "end_momentum": "max_momentum"},
                {"end_iter": n - 1, "start_momentum": "max_momentum", "end_momentum": "max_momentum"}]
        else:
            self.momentum_phases = [
                {"end_iter": float(pct * n) - 1, "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_iter": n - 1, "start_momentum": "base_momentum", "end_momentum": "max_momentum"}]

    def get_momentum(self, runner: Any, param_group: dict[str, float]) -> float:
        curr_iter = runner.iter
        start_iter = 0.0
        last = len(self.momentum_phases) - 1
        for i, phase in enumerate(self.momentum_phases):
            end_iter = phase["end_iter"]
            if curr_iter <= end_iter or i == last:
                # a first phase ending at iteration 0 starts there (mmcv divides by zero)
                pct = 0.0 if end_iter == start_iter else (curr_iter - start_iter) / (end_iter - start_iter)
                return self.anneal_func(param_group[phase["start_momentum"]], param_group[phase["end_momentum"]],
                                        pct)
            start_iter = end_iter
        return 0.0

    def get_regular_momentum(self, runner: Any) -> Any:
        if isinstance(runner.optimizer, dict):
            return {k: [self.get_momentum(runner, g) for g in optim.param_groups]
                    for k, optim in runner.optimizer.items()}
        return [self.get_momentum(runner, g) for g in runner.optimizer.param_groups]


MOMENTUM_HOOKS: dict[str, type] = {str(c.policy): c for c in (
    StepMomentumUpdaterHook, CosineAnnealingMomentumUpdaterHook, LinearAnnealingMomentumUpdaterHook,
    CyclicMomentumUpdaterHook, OneCycleMomentumUpdaterHook)}

__all__ = [
    "MOMENTUM_HOOKS", "CosineAnnealingMomentumUpdaterHook", "CyclicMomentumUpdaterHook",
    "LinearAnnealingMomentumUpdaterHook", "MomentumUpdaterHook", "OneCycleMomentumUpdaterHook",
    "StepMomentumUpdaterHook",
]
