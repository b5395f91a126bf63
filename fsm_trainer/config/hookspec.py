"""The hooks a :class:`~fsm_trainer.config.schema.TrainConfig` asks for, before anything is built.

Hooks are registered as mmcv 1.7.2's ``register_training_hooks`` does, in this order (equal
priorities keep it):

=================================  =================================  ==================
config key                         hook (registry name)               priority
=================================  =================================  ==================
``lr_config`` (needs ``policy``)   ``lr_updater(**lr_config)``        VERY_HIGH (10)
``momentum_config``                ``momentum_updater(**cfg)``        HIGH (30)
``optimizer_config``               ``type``, default OptimizerHook    ABOVE_NORMAL (40)
``checkpoint_config``              ``type``, default CheckpointHook   NORMAL (50)
(always)                           IterTimerHook                      LOW (70)
``log_config.hooks[i]``            ``type``, ``interval`` default     VERY_LOW (90)
``custom_hooks[i]``                ``type``; ``priority`` popped      given, or NORMAL
``evaluation``                     EvalHook (as mmdet's train.py)     LOW (70)
=================================  =================================  ==================

With ``runner.type='IterBasedRunner'``, ``by_epoch=False`` is the default of the checkpoint,
LR and logger configs (not of ``momentum_config``, as in mmcv) and of ``evaluation`` (as
mmdet). :func:`hook_specs` computes this list without building anything;
:func:`fsm_trainer.config.validate.validate` checks every entry against its builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from fsm_trainer.config.loader import ConfigError
from fsm_trainer.config.schema import TrainConfig, check_type
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.priority import get_priority
from fsm_trainer.registry import (
    HOOKS,
    RegistryError,
    did_you_mean,
)

_SCHEDULE_KEYS: dict[str, Any] = {
    "policy": str, "by_epoch": bool, "warmup": str | None, "warmup_iters": int, "warmup_ratio": float,
    "warmup_by_epoch": bool, "step": int | list[int], "gamma": float, "min_lr": float | None,
    "min_lr_ratio": float | None, "power": float, "start_percent": float, "periods": list[int],
    "restart_weights": list[float], "target_ratio": float | list[float], "cyclic_times": int,
    "step_ratio_up": float, "anneal_strategy": str, "max_lr": Any, "total_steps": int | None,
    "pct_start": float, "div_factor": float, "final_div_factor": float, "three_phase": bool,
    "min_momentum": float | None, "min_momentum_ratio": float | None, "base_momentum": Any,
    "max_momentum": Any, "name": str, "priority": int | str,
}
"""Every key an ``lr_config``/``momentum_config`` may have (any policy), with its type."""



@attrs.frozen
class HookSpec:
    """One hook a config asks for, before it is built.

    ``needs`` names builder arguments supplied when the run is built (``dataloader`` for
    ``evaluation``); ``priority`` overrides the built hooks' priority (custom hooks).
    """

    path: str
    type: str
    builder: Callable[..., Any]
    kwargs: Mapping[str, Any]
    priority: int | None = None
    needs: tuple[str, ...] = ()
    custom: bool = False
    """An LR/momentum policy of a registered ``<Policy>LrUpdaterHook``, not a built-in schedule."""


def _specs_or_errors(cfg: TrainConfig) -> tuple[list[HookSpec], list[str]]:
    from fsm_trainer.config.builtins import register_builtins
    from fsm_trainer.hooks import lr_updater, momentum_updater
    from fsm_trainer.schedules import LR_POLICIES, MOMENTUM_POLICIES

    register_builtins()
    iter_based = cfg.runner.type == "IterBasedRunner"
    specs: list[HookSpec] = []
    errors: list[str] = []

    def typed(path: str, kw: Mapping[str, Any], default: str | None) -> tuple[str, Callable[..., Any]] | None:
        kind = kw.get("type", default)
        if kind is None:
            errors.append(f"{path}.type: required key missing; registered hooks: {', '.join(HOOKS.names())}")
            return None
        try:
            fn = HOOKS.get(kind, f"{path}.type")
            return (kind if isinstance(kind, str) else getattr(kind, "__name__", repr(kind))), fn
        except RegistryError as exc:
            where = ("; a hook of other code (mmdet's NumClassCheckHook...) must be registered in "
                     "fsm_trainer.registry.HOOKS by a module the config names in custom_imports=dict(imports=[...])")
            errors.append(f"{exc}{where}" if isinstance(kind, str) and ":" not in kind else str(exc))
            return None

    for key, builder in (("lr_config", lr_updater), ("momentum_config", momentum_updater)):
        sched = getattr(cfg, key)
        if sched is None:
            continue
        kw = dict(sched)
        if key == "lr_config" and iter_based:
            kw.setdefault("by_epoch", False)
        if key == "momentum_config" and iter_based and kw.get("by_epoch", True) is True:
            errors.append(
                f"{key}.by_epoch: an IterBasedRunner needs by_epoch=False here (mmcv does not default it for "
                "momentum_config, and its by-epoch momentum hook never fires in an iter-based run)"
            )
            continue
        known = LR_POLICIES if key == "lr_config" else MOMENTUM_POLICIES
        suffix = "LrUpdaterHook" if key == "lr_config" else "MomentumUpdaterHook"
        raw_policy = kw.get("policy")
        if not isinstance(raw_policy, str):
            errors.append(f"{key}.policy: " + ("required key missing" if raw_policy is None else
                                               f"expected a string, got {type(raw_policy).__name__} {raw_policy!r:.40}")
                          + f"; built-in policies: {', '.join(known)}")
            continue
        builtin = next((p for p in known if p.lower() == raw_policy.lower()), None)  # the schedules' spelling
        if builtin is None:
            # mmcv: an all-lowercase name is title-cased, then '<Policy>LrUpdaterHook' is built from HOOKS.
            hook_name = (raw_policy.title() if raw_policy == raw_policy.lower() else raw_policy) + suffix
            found = next((n for n in (raw_policy + suffix, hook_name) if n in HOOKS), None)
            if found is None:
                errors.append(
                    f"{key}.policy: {raw_policy!r} is neither a built-in policy{did_you_mean(raw_policy, known)} nor a "
                    f"registered hook {hook_name!r}; built-in: {', '.join(known)}; register {hook_name} in "
                    "fsm_trainer.registry.HOOKS (from a module named in custom_imports) to use it")
                continue
            try:
                custom = HOOKS.get(found, f"{key}.policy")
            except RegistryError as exc:
                errors.append(str(exc))
                continue
            specs.append(HookSpec(key, found, custom, {k: v for k, v in kw.items() if k != "policy"}, custom=True))
            continue
        key_errors = []
        for k, v in kw.items():
            if k not in _SCHEDULE_KEYS:
                hint = did_you_mean(k, _SCHEDULE_KEYS) or "; see the policies in fsm_trainer.schedules"
                key_errors.append(f"{key}.{k}: unknown key{hint}")
            else:
                key_errors.extend(check_type(v, _SCHEDULE_KEYS[k], f"{key}.{k}"))
        if key_errors:
            errors.extend(key_errors)
            continue
        specs.append(HookSpec(key, builtin + suffix, builder, kw))
    if cfg.optimizer_config is not None:
        kw = dict(cfg.optimizer_config)
        if cfg.fp16 is not None and kw.get("type", "OptimizerHook") == "OptimizerHook":
            # mmdet's train.py: optimizer_config = Fp16OptimizerHook(**optimizer_config, **fp16)
            kw = {**kw, **cfg.fp16, "type": "Fp16OptimizerHook"}
        t = typed("optimizer_config", kw, "OptimizerHook")
        if t:
            specs.append(HookSpec("optimizer_config", t[0], t[1], _without_type(kw)))
    if cfg.checkpoint_config is not None:
        kw = dict(cfg.checkpoint_config)
        if iter_based:
            kw.setdefault("by_epoch", False)
        t = typed("checkpoint_config", kw, "CheckpointHook")
        if t:
            specs.append(HookSpec("checkpoint_config", t[0], t[1], _without_type(kw)))
    t = typed("timer_config", {"type": "IterTimerHook"}, None)
    if t:
        specs.append(HookSpec("(timer)", t[0], t[1], {}))
    if cfg.log_config is not None:
        for i, item in enumerate(cfg.log_config.hooks):
            path = f"log_config.hooks[{i}]"
            kw = {"interval": cfg.log_config.interval, **item}
            if iter_based:
                kw.setdefault("by_epoch", False)
            t = typed(path, kw, None)
            if t:
                specs.append(HookSpec(path, t[0], t[1], _without_type(kw)))
    for i, item in enumerate(cfg.custom_hooks):
        path = f"custom_hooks[{i}]"
        kw = dict(item)
        prio = kw.pop("priority", "NORMAL")
        try:
            p = get_priority(prio)
        except FsmTrainerError as exc:
            errors.append(f"{path}.priority: {exc}")
            continue
        t = typed(path, kw, None)
        if t:
            specs.append(HookSpec(path, t[0], t[1], _without_type(kw), p))
    if cfg.evaluation is not None:
        kw = dict(cfg.evaluation)
        kw.setdefault("by_epoch", not iter_based)
        prio = kw.pop("priority", "LOW")
        eval_priority: int | None = None
        try:
            eval_priority = get_priority(prio)
        except FsmTrainerError as exc:
            errors.append(f"evaluation.priority: {exc}")
        t = typed("evaluation", {"type": "EvalHook", **kw}, None)
        if t and eval_priority is not None:
            specs.append(HookSpec("evaluation", t[0], t[1], eval_hook_kwargs(t[1], kw), eval_priority,
                                  ("dataloader",)))
    return specs, errors


def eval_hook_kwargs(builder: Callable[..., Any], evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The eval hook's arguments for an ``evaluation`` dict: as mmcv's ``EvalHook``, the keys the hook
    does not take go to ``dataset.evaluate`` (the ``eval_kwargs`` argument), when the builder has one."""
    from fsm_trainer.registry import signature_params

    allowed, _, _ = signature_params(builder)
    kw = _without_type(evaluation)
    if "eval_kwargs" not in allowed or "eval_kwargs" in kw:
        return kw
    own = {k: v for k, v in kw.items() if k in allowed}
    rest = {k: v for k, v in kw.items() if k not in allowed}
    return {**own, "eval_kwargs": rest} if rest else own


def _without_type(kw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if k != "type"}


def hook_specs(cfg: TrainConfig) -> list[HookSpec]:
    """The hooks ``cfg`` asks for, in mmcv's registration order (see the module docstring).

    Raises:
        ConfigError: an unknown hook type, priority, or schedule key.
    """
    specs, errors = _specs_or_errors(cfg)
    if errors:
        raise ConfigError(errors)
    return specs


__all__ = ["HookSpec", "eval_hook_kwargs", "hook_specs"]
