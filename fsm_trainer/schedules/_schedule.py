"""A policy plus warmup and the choice of counter: mmcv's ``lr_config``/``momentum_config``, validated.

:func:`build_lr_schedule` and :func:`build_momentum_schedule` take mmcv 1.7.2's dicts unchanged
and return a frozen :class:`Schedule`; :meth:`Schedule.value` is the value mmcv's hook sets at a
train iteration, as a pure function of the counters. Every rejected config raises
:class:`ScheduleConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any, Literal, cast

import attrs

from fsm_trainer.errors import ScheduleConfigError as ScheduleConfigError
from fsm_trainer.schedules import _policies as P

Kind = Literal["lr", "momentum"]


WARMUPS = ("constant", "linear", "exp")


def warmup_factor(warmup: str, i: int, warmup_iters: int, ratio: float) -> float:
    """The factor mmcv's LR warmup applies to the regular value at iteration ``i < warmup_iters``.

    The momentum warmup divides by this factor instead of multiplying.

    >>> [round(warmup_factor("linear", i, 4, 0.2), 3) for i in range(4)]
    [0.2, 0.4, 0.6, 0.8]
    >>> warmup_factor("exp", 0, 4, 0.01), warmup_factor("constant", 3, 4, 0.5)
    (0.01, 0.5)
    """
    if warmup == "constant":
        return ratio
    if warmup == "linear":
        return 1 - (1 - i / warmup_iters) * (1 - ratio)
    factor: float = ratio ** (1 - i / warmup_iters)
    return factor


def _warm(kind: Kind, warmup: str, ratio: float) -> Callable[[float, int, int], float]:
    # Same operations as mmcv, in the same order, so values match to the last bit.
    if kind == "lr":
        if warmup == "constant":
            return lambda v, i, n: v * ratio
        if warmup == "linear":
            return lambda v, i, n: v * (1 - (1 - i / n) * (1 - ratio))
        return lambda v, i, n: v * ratio ** (1 - i / n)
    if warmup == "constant":
        return lambda v, i, n: v / ratio
    if warmup == "linear":
        return lambda v, i, n: v / (1 - (1 - i / n) * (1 - ratio))
    return lambda v, i, n: v / ratio ** (1 - i / n)


@attrs.frozen
class Schedule:
    """A policy with mmcv's warmup, driven by epochs (``by_epoch``) or by iterations.

    Build it with :func:`build_lr_schedule`/:func:`build_momentum_schedule`.

    >>> s = build_lr_schedule(policy="step", step=[2], warmup="linear", warmup_iters=2, warmup_ratio=0.5)
    >>> [s.value(1.0, epoch=i // 2, iter=i, max_epochs=3, max_iters=6, epoch_len=2) for i in range(6)]
    [0.5, 0.75, 1.0, 1.0, 0.1, 0.1]
    """

    kind: Kind
    policy_name: str
    policy: P.Policy
    by_epoch: bool = True
    warmup: str | None = None
    warmup_iters: int = 0
    warmup_ratio: float = 0.1
    warmup_by_epoch: bool = False
    warm: Callable[[float, int, int], float] | None = attrs.field(init=False, default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.warmup is not None:
            object.__setattr__(self, "warm", _warm(self.kind, self.warmup, self.warmup_ratio))

    def warmup_length(self, epoch_len: int | None = None) -> int:
        """Warmup iterations (0 without warmup); ``epoch_len`` is needed with ``warmup_by_epoch``."""
        if self.warmup_by_epoch:
            if epoch_len is None:
                msg = "warmup_by_epoch=True needs the train loader's length (epoch_len)"
                raise ScheduleConfigError(msg)
            return self.warmup_iters * epoch_len
        return self.warmup_iters

    def regular(self, base: Any, *, epoch: int, iter: int, max_epochs: int | None, max_iters: int | None) -> float:
        """The policy's value without warmup."""
        if self.by_epoch:
            return self.policy(base, epoch, max_epochs)  # type: ignore[arg-type]
        return self.policy(base, iter, max_iters)  # type: ignore[arg-type]

    def value(
        self, base: Any, *, epoch: int = 0, iter: int, max_epochs: int | None = None,
        max_iters: int | None = None, epoch_len: int | None = None,
    ) -> float:
        """The value mmcv 1.7.2 sets at train iteration ``iter`` of epoch ``epoch``.

        Args:
            base: the group's ``initial_lr``/``initial_momentum`` (OneCycle: see the policy).
            epoch, iter: mmcv's 0-based counters at ``before_train_iter``.
            max_epochs, max_iters: the run's length (epoch-based runs: ``max_iters`` is
                ``max_epochs * epoch_len``).
            epoch_len: the train loader's length (for ``warmup_by_epoch``).
        """
        regular = self.regular(base, epoch=epoch, iter=iter, max_epochs=max_epochs, max_iters=max_iters)
        if self.warm is None:
            return regular
        n = self.warmup_length(epoch_len)
        return regular if iter >= n else self.warm(regular, iter, n)

    def check_run(
        self, by: str, *, max_epochs: int | None = None, max_iters: int | None = None,
        epoch_len: int | None = None,
    ) -> None:
        """Raise :class:`ScheduleConfigError` if the schedule cannot drive this run.

        Args:
            by: ``"epoch"`` or ``"iter"``, the runner's kind.
            max_epochs, max_iters, epoch_len: as for :meth:`value`.
        """
        cfg = f"{self.kind}_config"
        if by not in ("epoch", "iter"):
            msg = f"by must be 'epoch' or 'iter', got {by!r}"
            raise ScheduleConfigError(msg)
        if by == "iter" and self.by_epoch:
            msg = (
                f"{cfg}: by_epoch=True needs an epoch-based run; use by_epoch=False with max_iters "
                "(mmcv 1.7.2's IterBasedRunner never calls before_train_epoch, so it silently never updates)"
            )
            raise ScheduleConfigError(msg)
        if by == "iter" and self.warmup_by_epoch:
            msg = f"{cfg}: warmup_by_epoch=True needs an epoch-based run (mmcv 1.7.2 fails on it in an IterBasedRunner)"
            raise ScheduleConfigError(msg)
        if self.warmup_by_epoch and epoch_len is None:
            msg = f"{cfg}: warmup_by_epoch=True needs the train loader's length, and it has no len()"
            raise ScheduleConfigError(msg)
        if self.by_epoch:
            total, unit = max_epochs, "max_epochs"
        else:
            total, unit = max_iters, "max_iters"
        needs_total = not isinstance(self.policy, (P.Fixed, P.Step, P.Exp, P.Inv, P.CosineRestart))
        if isinstance(self.policy, P.OneCycle) and self.policy.total_steps is not None:
            needs_total = max_iters is None
        if needs_total and not total:
            msg = f"{cfg}: policy {self.policy_name!r} needs the run's {unit} (> 0), got {total!r}"
            raise ScheduleConfigError(msg)
        p = self.policy
        if isinstance(p, P.Cyclic) and max_iters is not None and max_iters // p.cyclic_times == 0:
            msg = (
                f"{cfg}: cyclic_times={p.cyclic_times} is more than max_iters={max_iters}; "
                "a cycle needs >= 1 iteration"
            )
            raise ScheduleConfigError(msg)
        if isinstance(p, P.OneCycle) and max_iters is not None and p.steps(max_iters) < max_iters:
            msg = f"{cfg}: total_steps={p.total_steps} must be >= the run's max_iters={max_iters}"
            raise ScheduleConfigError(msg)
        if isinstance(p, P.CosineRestart) and total is not None and sum(p.periods) < total:
            msg = (
                f"{cfg}: periods {list(p.periods)} sum to {sum(p.periods)}, less than the run's "
                f"{unit}={total}; the schedule would run out (mmcv raises there too)"
            )
            raise ScheduleConfigError(msg)


# ---------------------------------------------------------------------------------------------
# Validation: one small checker per value type, each naming the key and what is allowed.


def _fail(cfg: str, key: str, value: Any, allowed: str) -> ScheduleConfigError:
    return ScheduleConfigError(f"{cfg}: {key}={value!r} is invalid; {allowed}")


def _is_num(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _num(cfg: str, key: str, x: Any, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False) -> float:
    lo_s = "-inf" if lo is None else str(lo)
    hi_s = "inf" if hi is None else str(hi)
    rng = f"{'(' if lo_open or lo is None else '['}{lo_s}, {hi_s}{')' if hi_open or hi is None else ']'}"
    if not _is_num(x):
        raise _fail(cfg, key, x, f"allowed: a number in {rng}")
    ok = (lo is None or (x > lo if lo_open else x >= lo)) and (hi is None or (x < hi if hi_open else x <= hi))
    if not ok:
        raise _fail(cfg, key, x, f"allowed: a number in {rng}")
    return cast(float, x)


def _opt_num(cfg: str, key: str, x: Any, **kw: Any) -> float | None:
    return None if x is None else _num(cfg, key, x, **kw)


def _pos_int(cfg: str, key: str, x: Any) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x <= 0:
        raise _fail(cfg, key, x, "allowed: a positive int")
    return x


def _bool(cfg: str, key: str, x: Any) -> bool:
    if not isinstance(x, bool):
        raise _fail(cfg, key, x, "allowed: True or False")
    return x


def _choice(cfg: str, key: str, x: Any, allowed: tuple[str, ...]) -> str:
    if x not in allowed:
        raise _fail(cfg, key, x, f"allowed: {', '.join(map(repr, allowed))}")
    return cast(str, x)


def _step(cfg: str, x: Any) -> int | tuple[int, ...]:
    if isinstance(x, int) and not isinstance(x, bool):
        return _pos_int(cfg, "step", x)
    # An empty list has no milestone: the value stays the base (mmcv: ``gamma ** 0``).
    if isinstance(x, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in x):
        return tuple(x)
    raise _fail(cfg, "step", x, "allowed: a positive int (decay every `step`) or a list of positive ints "
                "(empty: a constant value)")


def _min_pair(cfg: str, kw: dict[str, Any], name: str) -> tuple[float | None, float | None]:
    a, b = kw.pop(f"min_{name}", None), kw.pop(f"min_{name}_ratio", None)
    if (a is None) == (b is None):
        msg = (
            f"{cfg}: give exactly one of min_{name} and min_{name}_ratio, "
            f"got min_{name}={a!r}, min_{name}_ratio={b!r}"
        )
        raise ScheduleConfigError(msg)
    return _opt_num(cfg, f"min_{name}", a), _opt_num(cfg, f"min_{name}_ratio", b)


def _target_ratio(cfg: str, x: Any) -> tuple[float, float]:
    # mmcv takes a float or a tuple; we also take an int or a list (mmcv's rejection is an accident).
    if _is_num(x):
        return (x, x / 1e5)
    if isinstance(x, (list, tuple)) and all(_is_num(v) for v in x):
        if len(x) == 1:
            return (x[0], x[0] / 1e5)
        if len(x) == 2:
            return (x[0], x[1])
    raise _fail(cfg, "target_ratio", x, "allowed: a number or a tuple of one or two numbers")


def _per_group(cfg: str, key: str, x: Any) -> Any:
    def ok(v: Any) -> bool:
        return _is_num(v) or (isinstance(v, (list, tuple)) and bool(v) and all(_is_num(e) for e in v))

    if ok(x):
        return tuple(x) if isinstance(x, list) else x
    if isinstance(x, Mapping) and x and all(isinstance(k, str) and ok(v) for k, v in x.items()):
        return {k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}
    allowed = "allowed: a number, a list with one number per param group, or a dict optimizer name -> either"
    raise _fail(cfg, key, x, allowed)


def _fraction(cfg: str, key: str, x: Any) -> float:
    # mmcv insists on a float (start_percent=1 is rejected); we take any number in [0, 1].
    return _num(cfg, key, x, 0, 1)


_Builder = Callable[[str, dict[str, Any]], P.Policy]


def _lr_policies() -> dict[str, tuple[dict[str, Any], _Builder]]:
    """Policy name -> (keys with defaults, builder popping them from the keyword dict)."""

    def step(cfg: str, kw: dict[str, Any]) -> P.Policy:
        return P.Step(_step(cfg, kw["step"]), _num(cfg, "gamma", kw["gamma"]), _opt_num(cfg, "min_lr", kw["min_lr"]))

    def cos_like(cls: Callable[..., P.Policy]) -> _Builder:
        def build(cfg: str, kw: dict[str, Any]) -> P.Policy:
            return cls(*_min_pair(cfg, kw, "lr"))

        return build

    def flat(cfg: str, kw: dict[str, Any]) -> P.Policy:
        sp = _fraction(cfg, "start_percent", kw.pop("start_percent"))
        return P.FlatCosineAnnealing(sp, *_min_pair(cfg, kw, "lr"))

    def restart(cfg: str, kw: dict[str, Any]) -> P.Policy:
        periods, weights = kw["periods"], kw["restart_weights"]
        if not isinstance(periods, (list, tuple)) or not periods or not all(
            isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in periods
        ):
            raise _fail(cfg, "periods", periods, "allowed: a non-empty list of positive ints")
        if not isinstance(weights, (list, tuple)) or not all(_is_num(w) for w in weights):
            raise _fail(cfg, "restart_weights", weights, "allowed: a list of numbers")
        if len(weights) != len(periods):
            msg = f"{cfg}: periods and restart_weights must have the same length, got {len(periods)} and {len(weights)}"
            raise ScheduleConfigError(msg)
        return P.CosineRestart(tuple(periods), tuple(weights), *_min_pair(cfg, kw, "lr"))

    def cyclic(cfg: str, kw: dict[str, Any]) -> P.Policy:
        return P.Cyclic(
            _target_ratio(cfg, kw["target_ratio"]), _pos_int(cfg, "cyclic_times", kw["cyclic_times"]),
            _num(cfg, "step_ratio_up", kw["step_ratio_up"], 0, 1, hi_open=True),
            _choice(cfg, "anneal_strategy", kw["anneal_strategy"], ("cos", "linear")),
            _num(cfg, "gamma", kw["gamma"], 0, 1, lo_open=True),
        )

    def one_cycle(cfg: str, kw: dict[str, Any]) -> P.Policy:
        ts = kw["total_steps"]
        if ts is not None:
            _pos_int(cfg, "total_steps", ts)
        return P.OneCycle(
            _per_group(cfg, "max_lr", kw["max_lr"]), ts, _fraction(cfg, "pct_start", kw["pct_start"]),
            _choice(cfg, "anneal_strategy", kw["anneal_strategy"], ("cos", "linear")),
            _num(cfg, "div_factor", kw["div_factor"], 0, lo_open=True),
            _num(cfg, "final_div_factor", kw["final_div_factor"], 0, lo_open=True),
            _bool(cfg, "three_phase", kw["three_phase"]),
        )

    req = _REQUIRED
    return {
        "Fixed": ({}, lambda cfg, kw: P.Fixed()),
        "Step": ({"step": req, "gamma": 0.1, "min_lr": None}, step),
        "Exp": ({"gamma": req}, lambda cfg, kw: P.Exp(_num(cfg, "gamma", kw["gamma"]))),
        "Poly": ({"power": 1.0, "min_lr": 0.0},
                 lambda cfg, kw: P.Poly(_num(cfg, "power", kw["power"]), _num(cfg, "min_lr", kw["min_lr"]))),
        "Inv": ({"gamma": req, "power": 1.0},
                lambda cfg, kw: P.Inv(_num(cfg, "gamma", kw["gamma"]), _num(cfg, "power", kw["power"]))),
        "CosineAnnealing": ({"min_lr": None, "min_lr_ratio": None}, cos_like(P.CosineAnnealing)),
        "FlatCosineAnnealing": ({"start_percent": 0.75, "min_lr": None, "min_lr_ratio": None}, flat),
        "CosineRestart": ({"periods": req, "restart_weights": [1], "min_lr": None, "min_lr_ratio": None}, restart),
        "Cyclic": ({"target_ratio": (10, 1e-4), "cyclic_times": 1, "step_ratio_up": 0.4,
                    "anneal_strategy": "cos", "gamma": 1}, cyclic),
        "OneCycle": ({"max_lr": req, "total_steps": None, "pct_start": 0.3, "anneal_strategy": "cos",
                      "div_factor": 25, "final_div_factor": 1e4, "three_phase": False}, one_cycle),
        "LinearAnnealing": ({"min_lr": None, "min_lr_ratio": None}, cos_like(P.LinearAnnealing)),
    }


def _momentum_policies() -> dict[str, tuple[dict[str, Any], _Builder]]:
    def step(cfg: str, kw: dict[str, Any]) -> P.Policy:
        return P.Step(_step(cfg, kw["step"]), _num(cfg, "gamma", kw["gamma"]),
                      _opt_num(cfg, "min_momentum", kw["min_momentum"]))

    def cos_like(cls: Callable[..., P.Policy]) -> _Builder:
        def build(cfg: str, kw: dict[str, Any]) -> P.Policy:
            return cls(*_min_pair(cfg, kw, "momentum"))

        return build

    def cyclic(cfg: str, kw: dict[str, Any]) -> P.Policy:
        return P.Cyclic(
            _target_ratio(cfg, kw["target_ratio"]), _pos_int(cfg, "cyclic_times", kw["cyclic_times"]),
            _num(cfg, "step_ratio_up", kw["step_ratio_up"], 0, 1, hi_open=True),
            _choice(cfg, "anneal_strategy", kw["anneal_strategy"], ("cos", "linear")),
            _num(cfg, "gamma", kw["gamma"]),  # mmcv does not bound the momentum's gamma
        )

    def one_cycle(cfg: str, kw: dict[str, Any]) -> P.Policy:
        return P.OneCycleMomentum(
            _per_group(cfg, "base_momentum", kw["base_momentum"]),
            _per_group(cfg, "max_momentum", kw["max_momentum"]),
            _fraction(cfg, "pct_start", kw["pct_start"]),
            _choice(cfg, "anneal_strategy", kw["anneal_strategy"], ("cos", "linear")),
            _bool(cfg, "three_phase", kw["three_phase"]),
        )

    req = _REQUIRED
    return {
        "Step": ({"step": req, "gamma": 0.5, "min_momentum": None}, step),
        "CosineAnnealing": ({"min_momentum": None, "min_momentum_ratio": None}, cos_like(P.CosineAnnealing)),
        "LinearAnnealing": ({"min_momentum": None, "min_momentum_ratio": None}, cos_like(P.LinearAnnealing)),
        "Cyclic": ({"target_ratio": (0.85 / 0.95, 1.0), "cyclic_times": 1, "step_ratio_up": 0.4,
                    "anneal_strategy": "cos", "gamma": 1.0}, cyclic),
        "OneCycle": ({"base_momentum": 0.85, "max_momentum": 0.95, "pct_start": 0.3,
                      "anneal_strategy": "cos", "three_phase": False}, one_cycle),
    }


_REQUIRED = object()
_ITER_ONLY = ("Cyclic", "OneCycle")  # mmcv: "currently only support by_epoch = False"


def _resolve_policy(cfg: str, policy: Any, table: Mapping[str, Any]) -> str:
    # mmcv title-cases an all-lowercase name ('step' -> 'Step') and takes others as given, so
    # 'cosineannealing' fails there; we match names in any case and say so in the docs.
    if not isinstance(policy, str):
        raise _fail(cfg, "policy", policy, f"allowed: {', '.join(table)}")
    for name in table:
        if name.lower() == policy.lower():
            return name
    raise _fail(cfg, "policy", policy, f"allowed (any case): {', '.join(table)}")


def _build(kind: Kind, config: Mapping[str, Any]) -> Schedule:
    cfg = f"{kind}_config"
    if not isinstance(config, Mapping):
        msg = f"{cfg} must be a dict, got {type(config).__name__}"
        raise ScheduleConfigError(msg)
    kw = dict(config)
    table = _lr_policies() if kind == "lr" else _momentum_policies()
    if "policy" not in kw:
        msg = f"{cfg}: the key 'policy' is required; allowed policies: {', '.join(table)}"
        raise ScheduleConfigError(msg)
    name = _resolve_policy(cfg, kw.pop("policy"), table)
    defaults, build = table[name]
    common: dict[str, Any] = {
        "by_epoch": name not in _ITER_ONLY, "warmup": None, "warmup_iters": 0,
        "warmup_ratio": 0.1 if kind == "lr" else 0.9,
    }
    if kind == "lr":
        common["warmup_by_epoch"] = False
    unknown = sorted(set(kw) - set(defaults) - set(common))
    if unknown:
        allowed = ", ".join([*defaults, *common])
        msg = f"{cfg}: unknown key(s) {', '.join(map(repr, unknown))} for policy {name!r}; allowed keys: {allowed}"
        raise ScheduleConfigError(msg)
    for key, default in defaults.items():
        if key not in kw:
            if default is _REQUIRED:
                msg = f"{cfg}: policy {name!r} requires the key {key!r}"
                raise ScheduleConfigError(msg)
            kw[key] = default
    for key, default in common.items():
        kw.setdefault(key, default)
    by_epoch = _bool(cfg, "by_epoch", kw.pop("by_epoch"))
    if by_epoch and name in _ITER_ONLY:
        raise _fail(cfg, "by_epoch", True, f"allowed for policy {name!r}: only by_epoch=False (as in mmcv 1.7.2)")
    warmup = kw.pop("warmup")
    warmup_iters, ratio = kw.pop("warmup_iters"), kw.pop("warmup_ratio")
    warmup_by_epoch = _bool(cfg, "warmup_by_epoch", kw.pop("warmup_by_epoch", False))
    if warmup is not None:
        _choice(cfg, "warmup", warmup, (*WARMUPS, None))  # type: ignore[arg-type]
        _pos_int(cfg, "warmup_iters", warmup_iters)
        _num(cfg, "warmup_ratio", ratio, 0, 1, lo_open=True)
    elif not isinstance(warmup_iters, int) or isinstance(warmup_iters, bool) or warmup_iters < 0:
        raise _fail(cfg, "warmup_iters", warmup_iters, "allowed: an int >= 0")
    policy = build(cfg, kw)
    return Schedule(kind, name, policy, by_epoch, warmup, warmup_iters, ratio, warmup_by_epoch)


def build_lr_schedule(**lr_config: Any) -> Schedule:
    """Validate mmcv 1.7.2's ``lr_config`` and return its :class:`Schedule`.

    >>> s = build_lr_schedule(policy="CosineAnnealing", min_lr=0.0, by_epoch=False)
    >>> s.value(1.0, iter=5, max_iters=10)
    0.5
    >>> build_lr_schedule(policy="step", step=[8, 11], gama=0.1)
    Traceback (most recent call last):
    ...
    fsm_trainer.errors.ScheduleConfigError: lr_config: unknown key(s) 'gama' for policy 'Step'; \
allowed keys: step, gamma, min_lr, by_epoch, warmup, warmup_iters, warmup_ratio, warmup_by_epoch

    Raises:
        ScheduleConfigError: unknown policy or key, missing key, value out of range.
    """
    return _build("lr", lr_config)


def build_momentum_schedule(**momentum_config: Any) -> Schedule:
    """Validate mmcv 1.7.2's ``momentum_config`` and return its :class:`Schedule`.

    >>> s = build_momentum_schedule(policy="step", step=2, gamma=0.5)
    >>> [s.value(0.9, epoch=e, iter=0, max_epochs=4) for e in range(4)]
    [0.9, 0.9, 0.45, 0.45]

    Raises:
        ScheduleConfigError: unknown policy or key, missing key, value out of range.
    """
    return _build("momentum", momentum_config)


LR_POLICIES = tuple(_lr_policies())
"""The LR policy names, as mmcv spells them."""
MOMENTUM_POLICIES = tuple(_momentum_policies())
"""The momentum policy names, as mmcv spells them."""
