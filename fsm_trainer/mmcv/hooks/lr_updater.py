"""mmcv's LR updater hooks and the helpers of ``mmcv.runner.hooks.lr_updater``.

``LrUpdaterHook`` is mmcv's base class (implement ``get_lr(runner, base_lr)``). The eleven
``<Policy>LrUpdaterHook`` classes take mmcv's arguments, validated by
:func:`fsm_trainer.schedules.build_lr_schedule`; unsubclassed they run as
:func:`fsm_trainer.hooks.lr_updater`, and a subclass overriding a point or ``get_lr``... runs
mmcv's logic below with the policy's ``get_lr`` (``CyclicLrUpdaterHook`` and
``OneCycleLrUpdaterHook`` with mmcv's phases, computed in ``before_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from fsm_trainer.mmcv.hook import MmcvCompatError
from fsm_trainer.priority import Priority
from fsm_trainer.schedules import ANNEAL, annealing_cos, annealing_linear, per_group

from ._base import MappedHook, shipped

_WARMUP_KEYS = ("by_epoch", "warmup", "warmup_iters", "warmup_ratio", "warmup_by_epoch")
WARMUPS = ("constant", "linear", "exp")


def format_param(name: str, optim: Any, param: Any) -> list[Any]:
    """mmcv's ``format_param``: one value per param group of ``optim`` (an optimizer called ``name``).

    ``param`` is a number (every group), a list with one value per group, or a dict
    ``optimizer name -> either``.

    >>> import torch
    >>> opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.ones(1))]},
    ...                        {"params": [torch.nn.Parameter(torch.ones(1))]}], lr=0.1)
    >>> format_param("SGD", opt, 0.5), format_param("SGD", opt, [1, 2]), format_param("SGD", opt, {"SGD": 3})
    ([0.5, 0.5], [1, 2], [3, 3])
    """
    return per_group(param, len(optim.param_groups), name, "param")


def check_warmup(warmup: str | None, warmup_iters: int, warmup_ratio: float, what: str = "warmup_ratio") -> None:
    """mmcv's checks of the warmup arguments, raising :class:`~fsm_trainer.mmcv.MmcvCompatError`."""
    if warmup is None:
        return
    if warmup not in WARMUPS:
        msg = f"warmup={warmup!r} is not supported; allowed: 'constant', 'linear', 'exp'"
        raise MmcvCompatError(msg)
    if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters <= 0:
        msg = f"warmup_iters must be a positive int with warmup={warmup!r}, got {warmup_iters!r}"
        raise MmcvCompatError(msg)
    if not 0 < warmup_ratio <= 1.0:
        msg = f"{what} must be in (0, 1], got {warmup_ratio!r}"
        raise MmcvCompatError(msg)


def for_groups(fn: Callable[[Any], Any], values: Any) -> Any:
    """``fn`` applied to a per-group list, or to each list of a per-optimizer dict."""
    if isinstance(values, dict):
        return {k: fn(v) for k, v in values.items()}
    return fn(values)


class LrUpdaterHook(MappedHook):
    """mmcv's ``LrUpdaterHook`` base (VERY_HIGH): subclass it and implement ``get_lr(runner, base_lr)``.

    The policy subclasses (``StepLrUpdaterHook``...) run as :func:`fsm_trainer.hooks.lr_updater`
    unless customised; a customised one runs mmcv's logic below with its ``get_lr``. Its
    ``state_dict`` keeps ``regular_lr`` (the value warmup scales), so a run resumed in the middle
    of a warmed-up epoch goes on exactly.
    """

    default_priority = int(Priority.VERY_HIGH)
    customisable: ClassVar[tuple[str, ...]] = ("get_lr", "get_regular_lr", "get_warmup_lr", "_set_lr")
    policy: ClassVar[str | None] = None

    def __init__(self, by_epoch: bool = True, warmup: str | None = None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.1, warmup_by_epoch: bool = False) -> None:
        check_warmup(warmup, warmup_iters, warmup_ratio)
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
        return shipped("lr_updater")(name=name, priority=priority, **self.lr_config())

    def lr_config(self) -> dict[str, Any]:
        """This hook as an mmcv ``lr_config`` dict."""
        warmup_iters = self.warmup_epochs if self.warmup_by_epoch else self.warmup_iters
        return {"policy": self.policy, "by_epoch": self.by_epoch, "warmup": self.warmup,
                "warmup_iters": warmup_iters, "warmup_ratio": self.warmup_ratio,
                "warmup_by_epoch": self.warmup_by_epoch, **getattr(self, "policy_args", {})}

    def state_dict(self) -> dict[str, Any]:
        """``regular_lr``: the LR warmup scales, set at the start of each epoch with ``by_epoch``."""
        return {"regular_lr": self.regular_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back ``regular_lr``."""
        self.regular_lr = state.get("regular_lr", self.regular_lr)

    def _set_lr(self, runner: Any, lr_groups: Any) -> None:
        if isinstance(runner.optimizer, dict):
            for k, optim in runner.optimizer.items():
                for param_group, lr in zip(optim.param_groups, lr_groups[k], strict=False):
                    param_group["lr"] = lr
        else:
            for param_group, lr in zip(runner.optimizer.param_groups, lr_groups, strict=False):
                param_group["lr"] = lr

    def get_lr(self, runner: Any, base_lr: float) -> float:
        msg = f"{type(self).__name__} must implement get_lr(runner, base_lr)"
        raise NotImplementedError(msg)

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

        return for_groups(warm, self.regular_lr)

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


def _split(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the base class's keyword arguments (``by_epoch``, warmup...) from ``kwargs``."""
    return {k: kwargs.pop(k) for k in list(kwargs) if k in _WARMUP_KEYS}


def _policy_class(policy: str) -> type:
    def __init__(self: Any, **kwargs: Any) -> None:
        common = _split(kwargs)
        from fsm_trainer.schedules import build_lr_schedule

        self.schedule = build_lr_schedule(policy=policy, **common, **kwargs)  # validates now, as mmcv's constructors
        self.policy_args = kwargs
        LrUpdaterHook.__init__(self, **common)

    def get_lr(self: Any, runner: Any, base_lr: float) -> float:
        from fsm_trainer.schedules import bind

        by_epoch = self.by_epoch
        total = runner.max_epochs if by_epoch else runner.max_iters
        return bind(self.schedule.policy, total)(base_lr, runner.epoch if by_epoch else runner.iter)

    name = f"{policy}LrUpdaterHook"
    ns: dict[str, Any] = {"__init__": __init__, "get_lr": get_lr, "policy": policy, "__module__": __name__,
                          "__doc__": f"mmcv's ``{name}`` (``lr_config=dict(policy={policy!r}, ...)``)."}
    return type(name, (LrUpdaterHook,), ns)


class CyclicAttrs:
    """The attributes mmcv's cyclic LR and momentum hooks have (set by :func:`adopt_cyclic`)."""

    target_ratio: tuple[float, float]
    cyclic_times: int
    step_ratio_up: float
    gamma: float
    anneal_func: Callable[[float, float, float], float]
    max_iter_per_phase: int | None


def adopt_cyclic(hook: CyclicAttrs, policy: Any) -> None:
    """Give a cyclic LR or momentum hook mmcv's attributes from its validated ``Cyclic`` policy."""
    from fsm_trainer.schedules import Cyclic

    assert isinstance(policy, Cyclic)
    hook.target_ratio = policy.target_ratio
    hook.cyclic_times = policy.cyclic_times
    hook.step_ratio_up = policy.step_ratio_up
    hook.gamma = policy.gamma
    hook.anneal_func = ANNEAL[policy.anneal]
    hook.max_iter_per_phase = None


def cyclic_phases(max_iters: int, cyclic_times: int, step_ratio_up: float,
                  target_ratio: Sequence[float]) -> tuple[int, list[list[Any]]]:
    """mmcv's cyclic phases: iterations per cycle, ``[start, end, start_ratio, end_ratio]`` of rise and fall."""
    per_phase = max_iters // cyclic_times
    up = int(step_ratio_up * per_phase)
    return per_phase, [[0, up, 1, target_ratio[0]], [up, per_phase, target_ratio[0], target_ratio[1]]]


def cyclic_value(hook: CyclicAttrs, base: float, it: int, phases: list[list[Any]]) -> float:
    """The cyclic LR or momentum of ``base`` at iteration ``it``, with the hook's ``max_iter_per_phase``,
    ``gamma`` and ``anneal_func`` (mmcv's cyclic ``get_lr``/``get_momentum``)."""
    per_phase = hook.max_iter_per_phase
    assert per_phase is not None, "before_run computes the phases"
    curr_iter = it % per_phase
    scale = hook.gamma ** (it // per_phase)
    for start_iter, end_iter, start_ratio, end_ratio in phases:
        if start_iter <= curr_iter < end_iter:
            # the excursion shrinks by gamma per cycle: the rise's end, the fall's start
            if start_iter == 0:
                end_ratio = 1 - scale + end_ratio * scale
            else:
                start_ratio = 1 - scale + start_ratio * scale
            return float(hook.anneal_func(base * start_ratio, base * end_ratio,
                                          (curr_iter - start_iter) / (end_iter - start_iter)))
    msg = f"no cyclic phase holds iteration {it} (phases {phases})"
    raise MmcvCompatError(msg)


class CyclicLrUpdaterHook(LrUpdaterHook, CyclicAttrs):
    """mmcv's ``CyclicLrUpdaterHook(by_epoch=False, target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4,
    anneal_strategy='cos', gamma=1, **warmup)``.

    ``before_run`` splits ``max_iters // cyclic_times`` iterations into a rise to
    ``target_ratio[0]`` and a fall to ``target_ratio[1]`` times the base LR (``lr_phases``).
    """

    policy = "Cyclic"

    def __init__(self, by_epoch: bool = False, target_ratio: float | tuple[float, ...] = (10, 1e-4),
                 cyclic_times: int = 1, step_ratio_up: float = 0.4, anneal_strategy: str = "cos",
                 gamma: float = 1, **kwargs: Any) -> None:
        from fsm_trainer.schedules import build_lr_schedule

        common = _split(kwargs)
        self.policy_args = {"target_ratio": target_ratio, "cyclic_times": cyclic_times,
                            "step_ratio_up": step_ratio_up, "anneal_strategy": anneal_strategy, "gamma": gamma,
                            **kwargs}
        self.schedule = build_lr_schedule(policy="Cyclic", by_epoch=by_epoch, **common, **self.policy_args)
        adopt_cyclic(self, self.schedule.policy)
        self.lr_phases: list[list[Any]] = []
        super().__init__(by_epoch=by_epoch, **common)

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        self.max_iter_per_phase, self.lr_phases = cyclic_phases(runner.max_iters, self.cyclic_times,
                                                                self.step_ratio_up, self.target_ratio)

    def get_lr(self, runner: Any, base_lr: float) -> float:
        return cyclic_value(self, base_lr, runner.iter, self.lr_phases)


class OneCycleLrUpdaterHook(LrUpdaterHook):
    """mmcv's ``OneCycleLrUpdaterHook(max_lr, total_steps=None, pct_start=0.3, anneal_strategy='cos', div_factor=25,
    final_div_factor=1e4, three_phase=False, **warmup)`` (``by_epoch=False`` only).

    ``before_run`` sets each group's base LR to ``max_lr / div_factor`` (``base_lr``, and
    ``initial_lr`` if the group has none) and the phases (``lr_phases``: end iteration, start
    and end factors of the base LR).
    """

    policy = "OneCycle"

    def __init__(self, max_lr: float | list[float] | dict[str, Any], total_steps: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", div_factor: float = 25,
                 final_div_factor: float = 1e4, three_phase: bool = False, **kwargs: Any) -> None:
        from fsm_trainer.schedules import build_lr_schedule

        common = _split(kwargs)
        common.setdefault("by_epoch", False)
        self.policy_args = {"max_lr": max_lr, "total_steps": total_steps, "pct_start": pct_start,
                            "anneal_strategy": anneal_strategy, "div_factor": div_factor,
                            "final_div_factor": final_div_factor, "three_phase": three_phase, **kwargs}
        self.schedule = build_lr_schedule(policy="OneCycle", **common, **self.policy_args)
        self._max_lr = max_lr
        if total_steps is not None:
            self.total_steps = total_steps
        self.pct_start = pct_start
        self.anneal_func: Callable[[float, float, float], float] = ANNEAL[anneal_strategy]
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.three_phase = three_phase
        self.lr_phases: list[list[float]] = []
        super().__init__(**common)

    def before_run(self, runner: Any) -> None:
        total_steps = getattr(self, "total_steps", runner.max_iters)
        if total_steps < runner.max_iters:
            msg = f"total_steps={total_steps} must be >= the run's max_iters={runner.max_iters}"
            raise MmcvCompatError(msg)
        optimizers = runner.optimizer if isinstance(runner.optimizer, dict) else {
            type(runner.optimizer).__name__: runner.optimizer}
        base: dict[str, list[float]] = {}
        for k, optim in optimizers.items():
            base[k] = [lr / self.div_factor for lr in format_param(k, optim, self._max_lr)]
            for group, lr in zip(optim.param_groups, base[k], strict=True):
                group.setdefault("initial_lr", lr)
        self.base_lr = base if isinstance(runner.optimizer, dict) else next(iter(base.values()))
        pct, div = self.pct_start, self.div_factor
        if self.three_phase:
            self.lr_phases = [[float(pct * total_steps) - 1, 1, div], [float(2 * pct * total_steps) - 2, div, 1],
                              [total_steps - 1, 1, 1 / self.final_div_factor]]
        else:
            self.lr_phases = [[float(pct * total_steps) - 1, 1, div], [total_steps - 1, div, 1 / self.final_div_factor]]

    def get_lr(self, runner: Any, base_lr: float) -> float:
        curr_iter = runner.iter
        start_iter = 0.0
        for end_iter, start_lr, end_lr in self.lr_phases:
            if curr_iter <= end_iter:
                # a first phase ending at iteration 0 starts there (mmcv divides by zero)
                pct = 0.0 if end_iter == start_iter else (curr_iter - start_iter) / (end_iter - start_iter)
                return self.anneal_func(base_lr * start_lr, base_lr * end_lr, pct)
            start_iter = end_iter
        msg = f"iteration {curr_iter} is past the last one-cycle phase (phases {self.lr_phases})"
        raise MmcvCompatError(msg)


_LR_POLICIES = ("Fixed", "Step", "Exp", "Poly", "Inv", "CosineAnnealing", "FlatCosineAnnealing", "CosineRestart",
                "Cyclic", "OneCycle", "LinearAnnealing")
LR_HOOKS: dict[str, type] = {p: _policy_class(p) for p in _LR_POLICIES if p not in ("Cyclic", "OneCycle")}
LR_HOOKS["Cyclic"] = CyclicLrUpdaterHook
LR_HOOKS["OneCycle"] = OneCycleLrUpdaterHook
LR_HOOKS = {p: LR_HOOKS[p] for p in _LR_POLICIES}

FixedLrUpdaterHook = LR_HOOKS["Fixed"]
StepLrUpdaterHook = LR_HOOKS["Step"]
ExpLrUpdaterHook = LR_HOOKS["Exp"]
PolyLrUpdaterHook = LR_HOOKS["Poly"]
InvLrUpdaterHook = LR_HOOKS["Inv"]
CosineAnnealingLrUpdaterHook = LR_HOOKS["CosineAnnealing"]
FlatCosineAnnealingLrUpdaterHook = LR_HOOKS["FlatCosineAnnealing"]
CosineRestartLrUpdaterHook = LR_HOOKS["CosineRestart"]
LinearAnnealingLrUpdaterHook = LR_HOOKS["LinearAnnealing"]

__all__ = [
    "LR_HOOKS", "CosineAnnealingLrUpdaterHook", "CosineRestartLrUpdaterHook", "CyclicLrUpdaterHook",
    "ExpLrUpdaterHook", "FixedLrUpdaterHook", "FlatCosineAnnealingLrUpdaterHook", "InvLrUpdaterHook",
    "LinearAnnealingLrUpdaterHook", "LrUpdaterHook", "OneCycleLrUpdaterHook", "PolyLrUpdaterHook",
    "StepLrUpdaterHook", "annealing_cos", "annealing_linear", "check_warmup", "for_groups", "format_param",
]
