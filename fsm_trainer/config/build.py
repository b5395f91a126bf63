"""From a :class:`~fsm_trainer.config.schema.TrainConfig` to the arguments of :func:`fsm_trainer.run`.

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
mmdet). :func:`hook_specs` computes this list without building anything; :func:`validate`
checks every entry against its builder (registered name, argument names and types, then a
dry call of the builder, which checks values) and reports all problems at once.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import attrs

from fsm_trainer.config import values
from fsm_trainer.config.loader import ConfigError
from fsm_trainer.config.schema import TrainConfig, check_type, unstructure_config
from fsm_trainer.config.values import blame
from fsm_trainer.errors import ArgumentTypeError, FsmTrainerError
from fsm_trainer.hook import Hook
from fsm_trainer.priority import get_priority
from fsm_trainer.registry import (
    DATASETS,
    HOOKS,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    RegistryError,
    check_kwargs,
    did_you_mean,
    import_module,
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

_LOADER_KEYS = ("samples_per_gpu", "workers_per_gpu", "shuffle", "drop_last", "persistent_workers", "pin_memory",
                "seed_samples")


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


# --------------------------------------------------------------------------- validation


def _simple(t: Any) -> bool:
    if t in (int, float, bool, str, type(None), Any):
        return True
    origin = typing.get_origin(t)
    if origin is Literal:
        return True
    if origin in (Union, types.UnionType, list, tuple, dict):
        return all(a is Ellipsis or _simple(a) for a in typing.get_args(t))
    return False


def _type_of_default(default: Any) -> Any:
    # Used where annotations are missing or too rich to check (torch's ``lr: float | Tensor``).
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float
    if isinstance(default, tuple) and default and all(isinstance(x, (int, float)) for x in default):
        return list[float]
    return None


def _hint_errors(fn: Callable[..., Any], kwargs: Mapping[str, Any], path: str) -> list[str]:
    target = fn.__init__ if isinstance(fn, type) else fn  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    errors = []
    for k, v in kwargs.items():
        t = hints.get(k)
        if t is None or not _simple(t):
            p = params.get(k)
            t = _type_of_default(p.default) if p is not None and p.default is not p.empty else None
            if t is float and v is None:
                continue
        if t is not None and _simple(t):
            errors.extend(check_type(v, t, f"{path}.{k}"))
    return errors


def check_call(fn: Callable[..., Any], kwargs: Mapping[str, Any], path: str, *, what: str,
               needs: Sequence[str] = (), dry_run: bool = True) -> list[str]:
    """Problems of ``fn(**kwargs)``: names, then types, then (``dry_run``) what the call raises."""
    errors = check_kwargs(fn, kwargs, path, what=what, provided=needs)
    if errors:
        return errors
    errors = _hint_errors(fn, kwargs, path)
    if errors or not dry_run:
        return errors
    try:
        # Arguments supplied when the run is built (the eval loader) are not used by the builders
        # themselves, only by the factories they return: None stands in for them.
        fn(**kwargs, **{n: None for n in needs if n not in kwargs})
    except (ValueError, TypeError, KeyError) as exc:
        arg = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc
        text = str(arg).strip()
        prefix = f"{path.split('[')[0]}: "
        return [blame(text.removeprefix(prefix), path, kwargs)]
    return []


def _device_errors(cfg: TrainConfig) -> list[str]:
    from fsm_trainer import device as D

    errors = D.check_device(cfg.device, "device") if cfg.device not in (None, "auto") else []
    if cfg.gpu_ids is not None and (not cfg.gpu_ids or any(isinstance(g, bool) or g < 0 for g in cfg.gpu_ids)):
        errors.append(f"gpu_ids: {list(cfg.gpu_ids)!r} is not allowed; allowed: a list of GPU indices >= 0")
    errors += D.check_backend_flags(cudnn_benchmark=cfg.cudnn_benchmark, allow_tf32=cfg.allow_tf32,
                                    matmul_precision=cfg.matmul_precision)
    errors += D.check_compile(cfg.compile, "compile")
    if cfg.fp16 is not None:
        errors += D.check_fp16(cfg.fp16, "fp16")
    return errors


def run_device(cfg: TrainConfig, *, distributed: bool = False) -> Any:
    """The ``device=`` of :func:`fsm_trainer.run` for ``cfg``: ``device``, or mmcv's ``gpu_ids`` in one process."""
    if cfg.device == "auto" and cfg.gpu_ids and not distributed:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{cfg.gpu_ids[0]}"
    return cfg.device


def validate(cfg: TrainConfig) -> list[str]:
    """Every problem of ``cfg`` beyond its shape, each naming its key path (``[]`` if none)."""
    from fsm_trainer.config.builtins import register_builtins
    from fsm_trainer.transitions import compile_workflow

    register_builtins()
    errors: list[str] = []
    errors.extend(_import_custom(cfg))
    r = cfg.runner
    limit = "max_epochs" if r.by == "epoch" else "max_iters"
    other = "max_iters" if r.by == "epoch" else "max_epochs"
    if getattr(r, other) is not None:
        errors.append(f"runner.{other}: not allowed for {r.type}; give {limit}")
    if getattr(r, limit) is None:
        errors.append(f"runner.{limit}: required for {r.type}")
    elif getattr(r, limit) < 0:
        errors.append(f"runner.{limit}: must be >= 0, got {getattr(r, limit)}")
    else:
        try:
            compile_workflow(list(cfg.workflow), **{limit: getattr(r, limit)})
        except FsmTrainerError as exc:
            errors.append(f"workflow: {exc}")
    if cfg.total_epochs is not None:
        if r.type != "EpochBasedRunner":
            errors.append(f"total_epochs: not allowed with {r.type} (mmcv's legacy spelling of "
                          "runner=dict(type='EpochBasedRunner', max_epochs=...))")
        elif r.max_epochs != cfg.total_epochs:
            errors.append(f"total_epochs: {cfg.total_epochs} differs from runner.max_epochs={r.max_epochs}; "
                          "give one of them (as mmcv asserts)")
    if cfg.total_iters is not None and r.type != "IterBasedRunner":
        errors.append(f"total_iters: not allowed with {r.type} (mmseg's legacy spelling of "
                      "runner=dict(type='IterBasedRunner', max_iters=...))")
    errors.extend(_device_errors(cfg))
    errors.extend(values.sampler_errors(cfg.sampler))
    errors.extend(values.auto_scale_lr_errors(cfg.auto_scale_lr, cfg.optimizer))
    for i, (mode, _) in enumerate(cfg.workflow):
        if mode == "val" and cfg.data.val is None:
            errors.append(f"data.val: required by workflow[{i}] ('val', ...)")
    if cfg.evaluation is not None and cfg.data.val is None:
        errors.append("data.val: required by evaluation")
    for label, reg, path, sub in (
        ("model", MODELS, "model", cfg.model),
        ("dataset", DATASETS, "data.train", cfg.data.train),
        ("dataset", DATASETS, "data.val", cfg.data.val),
        ("dataset", DATASETS, "data.test", cfg.data.test),
    ):
        if sub is None:
            continue
        errors.extend(_check_registered(reg, sub, path, label))
    errors.extend(_check_loss(cfg))
    errors.extend(_check_optimizer(cfg.optimizer))
    errors.extend(values.grad_clip_errors(cfg.optimizer_config))
    errors.extend(_check_wrapper(cfg.model_wrapper_cfg))
    for split in ("train", "val", "test"):
        for k in getattr(cfg.data, f"{split}_dataloader"):
            if k not in _LOADER_KEYS:
                hint = did_you_mean(k, _LOADER_KEYS) or ";"
                errors.append(f"data.{split}_dataloader.{k}: unknown key{hint} allowed: {', '.join(_LOADER_KEYS)}")
    errors.extend(values.loader_errors(cfg.data))
    if cfg.log_config is not None:
        errors.extend(values.number_errors(cfg.log_config.interval, "log_config.interval", ge=1, integer=True))
    errors.extend(values.runtime_errors(cfg))
    val_cls = _dataset_class(cfg.data.val)
    # An unresolvable or missing data.val is reported with data.val itself.
    eval_errors = values.evaluation_errors(cfg.evaluation, val_cls, _eval_hook_keys()) if val_cls is not None else []
    errors.extend(eval_errors)
    specs, spec_errors = _specs_or_errors(cfg)
    errors.extend(spec_errors)
    iter_based = cfg.runner.type == "IterBasedRunner"
    for s in specs:
        if s.path == "evaluation" and eval_errors:
            continue
        if s.path in ("lr_config", "momentum_config") and not s.custom:
            found = values.schedule_errors(s.path, s.kwargs)
            if found:
                errors.extend(found)
                continue
        found = (values.extras_errors(s.path, s.type, s.builder) + values.by_epoch_errors(s.path, s.kwargs, iter_based)
                 + values.interval_errors(s.path, s.kwargs))
        errors.extend(found or check_call(s.builder, s.kwargs, s.path, what=s.type, needs=s.needs))
    # NaN anywhere else (model, dataset, hook arguments...): never a valid setting.
    reported = {e.partition(":")[0] for e in errors}
    errors.extend(e for e in values.all_nan_errors(unstructure_config(cfg), skip=list(cfg.variables))
                  if e.partition(":")[0] not in reported)
    return list(dict.fromkeys(errors))


def _import_custom(cfg: TrainConfig) -> list[str]:
    ci = cfg.custom_imports
    if ci is None:
        return []
    errors = []
    for k in ci:
        if k not in ("imports", "allow_failed_imports"):
            hint = did_you_mean(k, ["imports", "allow_failed_imports"]) or ";"
            errors.append(f"custom_imports.{k}: unknown key{hint} allowed: imports, allow_failed_imports")
    imports = ci.get("imports", [])
    imports = [imports] if isinstance(imports, str) else imports
    errors.extend(check_type(imports, list[str], "custom_imports.imports"))
    if errors:
        return errors
    if not isinstance(ci.get("allow_failed_imports", False), bool):
        return [f"custom_imports.allow_failed_imports: {ci['allow_failed_imports']!r:.40} is not allowed; "
                "allowed: True or False"]
    for i, name in enumerate(imports):
        try:
            import_module(name)
        except ImportError as exc:
            if not ci.get("allow_failed_imports", False):
                errors.append(f"custom_imports.imports[{i}]: cannot import {name!r} ({exc})")
        except (Exception, SystemExit) as exc:
            errors.append(f"custom_imports.imports[{i}]: importing {name!r} raised {type(exc).__name__}: {exc}")
    return errors


def _check_registered(reg: Any, sub: Mapping[str, Any], path: str, label: str) -> list[str]:
    if "type" not in sub:
        return [f"{path}.type: required key missing; registered {label}s: {', '.join(reg.names())}"]
    try:
        fn = reg.get(sub["type"], f"{path}.type")
    except RegistryError as exc:
        return [str(exc)]
    kwargs = _without_type(sub)
    name = sub["type"] if isinstance(sub["type"], str) else getattr(fn, "__name__", "?")
    return check_call(fn, kwargs, path, what=name, dry_run=False)


def _dataset_class(sub: Mapping[str, Any] | None) -> Any:
    if not isinstance(sub, Mapping) or "type" not in sub:
        return None
    try:
        return DATASETS.get(sub["type"], "data.val.type")
    except RegistryError:
        return None


def _eval_hook_keys() -> tuple[str, ...] | None:
    """The ``evaluation`` keys the registered ``EvalHook`` takes itself (``None``: it takes any)."""
    from fsm_trainer.registry import signature_params

    try:
        builder = HOOKS.get("EvalHook", "evaluation.type")
    except RegistryError:
        return None
    allowed, _, any_kw = signature_params(builder)
    if any_kw or "eval_kwargs" not in allowed:
        return None
    return (*(k for k in allowed if k not in ("dataloader", "eval_kwargs")), "priority")


def is_optimizer_dict(opt: Mapping[str, Any]) -> bool:
    """mmcv's ``build_optimizers`` case: ``dict(generator=dict(type=...), discriminator=dict(type=...))``."""
    return bool(opt) and "type" not in opt and all(isinstance(v, Mapping) for v in opt.values())


def _check_optimizer(opt: Mapping[str, Any], path: str = "optimizer") -> list[str]:
    from fsm_trainer.registry import OPTIMIZER_CONSTRUCTORS

    if path == "optimizer" and is_optimizer_dict(opt):
        return [e for name, sub in opt.items() for e in _check_optimizer(sub, f"{path}.{name}")]
    errors: list[str] = []
    default = "DefaultOptimizerConstructor"
    constructor = opt.get("constructor", default)
    if constructor != default:
        try:
            OPTIMIZER_CONSTRUCTORS.get(constructor, f"{path}.constructor")
        except RegistryError as exc:
            errors.append(f"{exc}; register it in fsm_trainer.registry.OPTIMIZER_CONSTRUCTORS (from a module named "
                          "in custom_imports)")
    if "type" not in opt:
        return [*errors, f"{path}.type: required key missing; registered optimizers: {', '.join(OPTIMIZERS.names())}"]
    try:
        cls = OPTIMIZERS.get(opt["type"], f"{path}.type")
    except RegistryError as exc:
        return [*errors, f"{exc}; an optimizer of other code must be registered in fsm_trainer.registry.OPTIMIZERS "
                "(from a module named in custom_imports)"]
    kwargs = {k: v for k, v in opt.items() if k not in ("type", "paramwise_cfg", "constructor")}
    errors += check_call(cls, kwargs, path, what=str(opt["type"]), needs=("params",), dry_run=False)
    # A custom constructor owns paramwise_cfg (LearningRateDecayOptimizerConstructor's decay_rate...).
    return errors or values.optimizer_errors(opt, cls, path, paramwise=constructor == default)


def build_optimizers(model: Any, opt: Mapping[str, Any], path: str = "optimizer") -> Any:
    """mmcv's ``build_optimizer`` (through ``optimizer.constructor``), or ``build_optimizers`` for a dict
    of optimizers: one per key, over the model's attribute of that name.

    Raises:
        ConfigError: the model has no attribute a dict of optimizers names, or building fails.
    """
    import torch

    from fsm_trainer.registry import OPTIMIZER_CONSTRUCTORS

    if path == "optimizer" and is_optimizer_dict(opt):
        out = {}
        for name, sub in opt.items():
            part = getattr(model, name, None)
            if not isinstance(part, torch.nn.Module):
                msg = (f"optimizer.{name}: the model ({type(model).__name__}) has no submodule {name!r}; a dict of "
                       "optimizers builds one optimizer per key over the model's attribute of that name")
                raise ConfigError(msg)
            out[name] = build_optimizers(part, sub, f"{path}.{name}")
        return out
    cfg = dict(opt)
    ctor_cls = OPTIMIZER_CONSTRUCTORS.get(cfg.pop("constructor", "DefaultOptimizerConstructor"), f"{path}.constructor")
    paramwise = cfg.pop("paramwise_cfg", None)
    with constructing(path, opt):
        return ctor_cls(optimizer_cfg=cfg, paramwise_cfg=paramwise)(model)


def scaled_lr(cfg: TrainConfig, world_size: int) -> float | None:
    """mmdet's ``auto_scale_lr``: ``optimizer.lr * world_size * samples_per_gpu / base_batch_size`` when
    ``auto_scale_lr.enable`` is True, else ``None``."""
    auto = cfg.auto_scale_lr or {}
    if auto.get("enable") is not True or "lr" not in cfg.optimizer:
        return None
    batch = world_size * cfg.data.samples_per_gpu
    scaled: float = float(cfg.optimizer["lr"]) * batch / auto["base_batch_size"]
    return scaled


def without_effect(cfg: TrainConfig, *, distributed: bool = False) -> list[str]:
    """The config keys accepted without effect in this run, as ``key=value`` (logged once when a run starts)."""
    from fsm_trainer.config.schema import IGNORED_KEYS
    from fsm_trainer.hooks.eval import NO_EFFECT_KEYS

    shown = {k: getattr(cfg, k) for k in IGNORED_KEYS if getattr(cfg, k) not in (None, False)}
    out = [f"{k}={list(v) if isinstance(v, tuple) else v!r}" for k, v in shown.items()]
    if cfg.find_unused_parameters and not distributed:
        out.append("find_unused_parameters=True (only used by DistributedDataParallel, --launcher pytorch)")
    if cfg.auto_scale_lr is not None and cfg.auto_scale_lr.get("enable") is not True:
        out.append(f"auto_scale_lr={cfg.auto_scale_lr!r} (enable is not True)")
    if cfg.total_iters is not None and cfg.runner.max_iters != cfg.total_iters:
        out.append(f"total_iters={cfg.total_iters!r} (runner.max_iters={cfg.runner.max_iters!r} is used, as mmseg)")
    ev = cfg.evaluation or {}
    out += [f"evaluation.{k}={ev[k]!r} (results are gathered in memory)" for k in NO_EFFECT_KEYS if k in ev]
    oc = cfg.optimizer_config or {}
    out += [f"optimizer_config.{k}={oc[k]!r}" for k in ("coalesce", "bucket_size_mb", "distributed") if k in oc]
    if cfg.checkpoint_config and "sync_buffer" in cfg.checkpoint_config:
        out.append(f"checkpoint_config.sync_buffer={cfg.checkpoint_config['sync_buffer']!r}")
    return out


def _check_loss(cfg: TrainConfig) -> list[str]:
    """``loss``: a registered loss (or import path) whose arguments fit; required by a model without ``train_step``."""
    errors: list[str] = []
    if cfg.loss is not None:
        errors.extend(_check_registered(LOSSES, cfg.loss, "loss", "loss"))
        if not errors:
            fn = LOSSES.get(cfg.loss["type"], "loss.type")
            kwargs = _without_type(cfg.loss)
            errors.extend(values.loss_errors(kwargs, fn))
            try:
                fn(**kwargs)
            except Exception as exc:
                errors.append(blame(exc, "loss", kwargs))
    kind = cfg.model.get("type") if isinstance(cfg.model, Mapping) else None
    try:
        model_cls = MODELS.get(kind, "model.type") if kind is not None else None
    except RegistryError:
        return errors  # reported with the model
    if not isinstance(model_cls, type):
        return errors
    has_steps = hasattr(model_cls, "train_step") and hasattr(model_cls, "val_step")
    name = kind if isinstance(kind, str) else model_cls.__name__
    if not has_steps and cfg.loss is None:
        errors.append(
            f"model.type: {name} has no train_step/val_step, so the config needs a loss for it: add "
            "loss=dict(type='CrossEntropyLoss') (any torch.nn loss, or 'pkg.module:Name'); batches are then "
            "(inputs, targets) and the loss is loss(model(inputs), targets)"
        )
    elif has_steps and cfg.loss is not None:
        errors.append(f"loss: {name} has its own train_step/val_step, which compute the loss; remove loss "
                      "(it would never be used)")
    return errors


_DDP_TYPES = ("MMDistributedDataParallel", "DistributedDataParallel", "DDP")
_FSDP_TYPES = ("MMFullyShardedDataParallel", "FullyShardedDataParallel", "FSDP")


def _check_wrapper(w: Mapping[str, Any] | None) -> list[str]:
    if w is None:
        return []
    kind = w.get("type", "MMDistributedDataParallel")
    if kind in _DDP_TYPES:
        allowed = {"type"}
    elif kind in _FSDP_TYPES:
        allowed = {"type", "shard_modules"}
        mods = w.get("shard_modules", [])
        if not isinstance(mods, (list, tuple)) or not all(isinstance(m, str) for m in mods):
            return [f"model_wrapper_cfg.shard_modules: a list of module class names, got {mods!r}"]
    else:
        return [f"model_wrapper_cfg.type: {kind!r} is not one of {', '.join(_DDP_TYPES + _FSDP_TYPES)}"]
    return [f"model_wrapper_cfg.{k}: unknown key for {kind}; allowed: {', '.join(sorted(allowed))}"
            for k in w if k not in allowed]


def wrapper_kwargs(cfg: TrainConfig, model: Any) -> dict[str, Any]:
    """:func:`fsm_trainer.dist.prepare`'s ``strategy``/``shard_modules`` from ``model_wrapper_cfg``.

    Raises:
        ConfigError: a ``shard_modules`` name that is no submodule's class of ``model``.
    """
    w = cfg.model_wrapper_cfg or {}
    if w.get("type", "MMDistributedDataParallel") in _DDP_TYPES:
        return {"strategy": "ddp"}
    present = {type(m).__name__: type(m) for m in model.modules()}
    wanted = list(w.get("shard_modules", []))
    unknown = [n for n in wanted if n not in present]
    if unknown:
        raise ConfigError([f"model_wrapper_cfg.shard_modules: {n!r} is not the class of a submodule of the model; "
                           f"present: {', '.join(sorted(present))}" for n in unknown])
    return {"strategy": "fsdp", "shard_modules": tuple(present[n] for n in wanted)}


def check_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` if :func:`validate` finds nothing; else :class:`ConfigError` listing every problem."""
    errors = validate(cfg)
    if errors:
        raise ConfigError(errors)
    return cfg


# --------------------------------------------------------------------------- building


def set_random_seed(seed: int, *, deterministic: bool = False) -> None:
    """Seed python, NumPy and torch; ``deterministic`` makes torch refuse nondeterministic kernels."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def with_priority(made: Any, priority: int | None) -> Any:
    """``made`` (a Hook, list of Hooks or factory) with every hook at ``priority`` (``None``: unchanged)."""
    if priority is None:
        return made
    if isinstance(made, Hook):
        return attrs.evolve(made, priority=priority)
    if isinstance(made, (list, tuple)):
        return [with_priority(m, priority) for m in made]
    if callable(made):

        def factory(ctx: Any) -> Any:
            return with_priority(made(ctx), priority)

        return factory
    msg = f"a hook builder returned {made!r}, not a Hook, a list of Hooks or a factory"
    raise ArgumentTypeError(msg)


@attrs.define
class Built:
    """Everything :func:`fsm_trainer.run` needs for a config; ``run_kwargs()`` are its arguments."""

    cfg: TrainConfig
    table: Any
    model: Any
    optimizer: Any
    datasets: dict[str, Any]
    data_loaders: list[Any]
    hooks: list[Any]
    specs: list[HookSpec]
    work_dir: Path | None
    seed: int
    train_step: Any = None
    val_step: Any = None
    meta: dict[str, Any] = attrs.field(factory=dict)
    loss_fn: Any = None
    device: Any = "auto"
    compile: Any = None

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fsm_trainer.run` (add ``resume=``, ``logger=`` as needed)."""
        kw: dict[str, Any] = {
            "data_loaders": self.data_loaders, "model": self.model, "optimizer": self.optimizer,
            "hooks": self.hooks, "work_dir": self.work_dir, "meta": self.meta, "device": self.device,
        }
        if self.compile not in (None, False):
            kw["compile"] = self.compile
        if self.train_step is not None:
            kw["train_step"], kw["val_step"] = self.train_step, self.val_step
        elif self.loss_fn is not None:
            kw["loss_fn"] = self.loss_fn
        return kw


def build_loader(dataset: Any, cfg: TrainConfig, split: str, seed: int, *, distributed: bool = False) -> Any:
    """mmcv-style DataLoader for ``split``: ``samples_per_gpu`` per batch; train shuffles by ``seed``.

    The train loader has a :class:`~fsm_trainer.sampler.ResumableSampler`, so a resumed run
    continues the same data order mid-epoch. ``distributed``: every loader is sharded over the
    ranks of the process group (``samples_per_gpu`` per rank; val in dataset order, padded).
    """
    from torch.utils.data import DataLoader

    from fsm_trainer.device import loader_kwargs
    from fsm_trainer.sampler import resumable_loader

    data = cfg.data
    device = run_device(cfg, distributed=distributed)
    # pin_memory when batches go to a GPU, unless the config says otherwise.
    over = {**(loader_kwargs(device) if device is not None else {}), **getattr(data, f"{split}_dataloader")}
    bs = over.pop("samples_per_gpu", data.samples_per_gpu)
    nw = over.pop("workers_per_gpu", data.workers_per_gpu)
    shuffle = over.pop("shuffle", split == "train")
    persistent = over.pop("persistent_workers", data.persistent_workers) and nw > 0
    if split == "train" or distributed or over.get("seed_samples"):
        return resumable_loader(dataset, bs, seed=seed, shuffle=shuffle, num_workers=nw,
                                persistent_workers=persistent, distributed=distributed, **over)
    over.pop("seed_samples", None)
    return DataLoader(dataset, batch_size=bs, shuffle=shuffle, num_workers=nw, persistent_workers=persistent, **over)


def build_datasets(cfg: TrainConfig, seed: int, *, distributed: bool = False) -> tuple[dict[str, Any], list[Any]]:
    """``({"train": ds, "val": ds?}, one loader per workflow entry)``.

    Raises:
        ConfigError: a dataset cannot be built with its arguments (naming ``data.<split>``), or a
            loader of the workflow has no batch.
    """
    with constructing("data.train", cfg.data.train):
        datasets = {"train": DATASETS.build(cfg.data.train, "data.train")}
    if cfg.data.val is not None and (cfg.evaluation is not None or any(m == "val" for m, _ in cfg.workflow)):
        with constructing("data.val", cfg.data.val):
            datasets["val"] = DATASETS.build(cfg.data.val, "data.val")
    loaders = {}
    for split, ds in datasets.items():
        over = getattr(cfg.data, f"{split}_dataloader")
        with constructing(f"data.{split}_dataloader", {"type": "DataLoader", **over}):
            loaders[split] = build_loader(ds, cfg, split, seed, distributed=distributed)
    for mode, _ in cfg.workflow:
        n = _length(loaders[mode])
        if n == 0:
            over = getattr(cfg.data, f"{mode}_dataloader")
            bs = over.get("samples_per_gpu", cfg.data.samples_per_gpu)
            msg = (f"data.{mode}: the {mode} loader has no batch ({_length(datasets[mode])} samples, "
                   f"samples_per_gpu={bs}, drop_last={over.get('drop_last', False)})")
            raise ConfigError(msg)
    return datasets, [loaders[mode] for mode, _ in cfg.workflow]


def _length(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


@contextlib.contextmanager
def constructing(path: str, entry: Any) -> Iterator[None]:
    """Report what building the config entry at ``path`` (``dict(type=..., **kwargs)``) raises as a
    :class:`ConfigError` naming it, the arguments and, when the message names one, the key.

    Registry, config and schedule errors pass as they are (they name their path already).
    """
    try:
        yield
    except (ConfigError, RegistryError):
        raise
    except Exception as exc:
        cfg = entry if isinstance(entry, Mapping) else {}
        kind = cfg.get("type")
        name = kind if isinstance(kind, str) else getattr(kind, "__name__", path.rpartition(".")[2])
        args = _without_type(cfg)
        shown = ", ".join(f"{k}={v!r:.40}" for k, v in args.items())
        text = blame(exc, path, args)
        where, _, what = text.partition(": ")
        msg = f"{where}: {name}({shown}) failed: {what}"
        raise ConfigError(msg) from exc


def build_table(cfg: TrainConfig) -> Any:
    """The transition table of ``cfg.workflow`` and ``cfg.runner``."""
    from fsm_trainer.transitions import compile_workflow

    r = cfg.runner
    if r.by == "epoch":
        return compile_workflow(list(cfg.workflow), max_epochs=r.max_epochs)
    return compile_workflow(list(cfg.workflow), max_iters=r.max_iters)


def build(cfg: TrainConfig, *, work_dir: str | Path | None = None, seed: int | None = None,
          build_data: bool = True, meta: Mapping[str, Any] | None = None, distributed: bool = False) -> Built:
    """Validate ``cfg`` and build its model, optimizer, loaders, table and hooks.

    Args:
        cfg: a structured config.
        work_dir: overrides ``cfg.work_dir``.
        seed: overrides ``cfg.seed``; seeds python/NumPy/torch before the model is built and
            is the train loader's shuffle seed (``0`` when neither is given: no global seeding).
        build_data: ``False`` skips datasets and loaders (``data_loaders`` is empty).
        meta: extra run metadata (``exp_name``...).
        distributed: shard the loaders over the ranks of the current process group (see
            :func:`build_loader`), wrap the model in DistributedDataParallel and make the
            train step go through it (``train_step`` in ``run_kwargs()``).

    Raises:
        ConfigError: :func:`validate` found problems.
    """
    check_config(cfg)
    from fsm_trainer import device as D

    # Before seeding, so that deterministic=True still turns cudnn's benchmark mode off, as mmcv.
    D.apply_backend_flags(cudnn_benchmark=cfg.cudnn_benchmark or None, allow_tf32=cfg.allow_tf32,
                          matmul_precision=cfg.matmul_precision)
    seed = cfg.seed if seed is None else seed
    if seed is not None:
        set_random_seed(seed, deterministic=cfg.deterministic)
    elif cfg.deterministic:
        set_random_seed(0, deterministic=True)
    with constructing("model", cfg.model):
        model = MODELS.build(cfg.model, "model")
    loss_fn = None
    if cfg.loss is not None:
        with constructing("loss", cfg.loss):
            loss_fn = LOSSES.build(cfg.loss, "loss")
    if loss_fn is None and not (hasattr(model, "train_step") and hasattr(model, "val_step")):
        msg = (f"model.type: the model built ({type(model).__name__}) has no train_step/val_step, so the config "
               "needs a loss for it: add loss=dict(type='CrossEntropyLoss') (any torch.nn loss, or 'pkg.module:Name')")
        raise ConfigError(msg)
    opt_cfg = dict(cfg.optimizer)
    world_size = 1
    if distributed:
        from fsm_trainer.dist import get_dist_info

        world_size = get_dist_info()[1]
    lr = scaled_lr(cfg, world_size)
    if lr is not None:
        logging.getLogger("fsm_trainer").info(
            "auto_scale_lr: optimizer.lr %g -> %g (%d ranks x samples_per_gpu %d, base_batch_size %d)",
            opt_cfg["lr"], lr, world_size, cfg.data.samples_per_gpu, cfg.auto_scale_lr["base_batch_size"])  # type: ignore[index]
        opt_cfg["lr"] = lr
    optimizer = build_optimizers(model, opt_cfg)
    datasets, loaders = build_datasets(cfg, seed or 0, distributed=distributed) if build_data else ({}, [])
    if build_data and "val" in datasets and cfg.evaluation is not None:
        found = values.dataset_metric_errors(cfg.evaluation.get("metric"), datasets["val"])
        if found and callable(getattr(datasets["val"], "evaluate", None)):
            raise ConfigError(found)
    table = build_table(cfg)
    specs = hook_specs(cfg)
    if build_data:
        _check_schedules(specs, table, loaders)
    hooks, amp = [], None
    for s in specs:
        kwargs = dict(s.kwargs)
        if "dataloader" in s.needs:
            kwargs["dataloader"] = (build_loader(datasets["val"], cfg, "val", seed or 0, distributed=distributed)
                                    if build_data else None)
        with constructing(s.path, {"type": s.type, **s.kwargs}):
            made = s.builder(**kwargs)
        amp = getattr(made, "amp", amp)
        hooks.append(with_priority(made, s.priority))
    train_step = val_step = None
    if distributed:  # wrapped here so that AMP's steps go through DDP too
        from fsm_trainer.dist import prepare
        from fsm_trainer.step import make_steps

        prepared = prepare(model, optimizer, loaders, list(cfg.workflow) if loaders else [],
                           **wrapper_kwargs(cfg, model), find_unused_parameters=cfg.find_unused_parameters)
        optimizer = prepared.optimizer
        train_step, val_step = (amp.steps if amp is not None else make_steps)(
            model, optimizer, by=table.by, parallel=prepared.parallel, loss_fn=loss_fn)
    elif amp is not None:
        train_step, val_step = amp.steps(model, optimizer, by=table.by, loss_fn=loss_fn)
    wd = work_dir if work_dir is not None else cfg.work_dir
    return Built(cfg, table, model, optimizer, datasets, loaders, hooks, specs,
                 Path(wd) if wd is not None else None, seed or 0, train_step, val_step,
                 {"seed": seed, **(meta or {})}, loss_fn, run_device(cfg, distributed=distributed), cfg.compile)


def _check_schedules(specs: Sequence[HookSpec], table: Any, loaders: Sequence[Any]) -> None:
    """What the LR/momentum hooks check when the run starts (the run's length), checked now."""
    from fsm_trainer.schedules import ScheduleConfigError, build_lr_schedule, build_momentum_schedule

    epoch_len = None
    if table.by == "epoch":
        first = next((i for i, (mode, _) in enumerate(table.workflow) if mode == "train"), None)
        epoch_len = _length(loaders[first]) if first is not None and first < len(loaders) else None
    max_iters = table.max_iters if table.by == "iter" else (
        table.max_epochs * epoch_len if epoch_len is not None else None)
    errors = []
    for s in specs:
        if s.path not in ("lr_config", "momentum_config") or s.custom:
            continue
        kw = {k: v for k, v in s.kwargs.items() if k not in ("name", "priority")}
        try:
            schedule = (build_lr_schedule if s.path == "lr_config" else build_momentum_schedule)(**kw)
            schedule.check_run(table.by, max_epochs=table.max_epochs, max_iters=max_iters, epoch_len=epoch_len)
        except ScheduleConfigError as exc:
            text = str(exc).removeprefix(f"{s.path}: ")
            errors.append(blame(text, s.path, kw))
    if errors:
        raise ConfigError(errors)


__all__ = [
    "Built", "HookSpec", "build", "build_datasets", "build_loader", "build_optimizers", "build_table", "check_call",
    "check_config", "constructing", "eval_hook_kwargs", "hook_specs", "is_optimizer_dict", "scaled_lr",
    "set_random_seed", "validate", "with_priority", "without_effect", "wrapper_kwargs",
]
