"""Checking a :class:`~fsm_trainer.config.schema.TrainConfig` before any work: every hook entry
against its builder (registered name, argument names and types, then a dry call of the builder,
which checks values), the data, optimizer, loss, device and wrapper sections, all problems
reported at once (:func:`validate`, :func:`check_config`); and :func:`constructing`, which names
the config entry whose construction failed.
"""

from __future__ import annotations

import contextlib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Union

from fsm_trainer.config import values
from fsm_trainer.config.hookspec import _specs_or_errors, _without_type
from fsm_trainer.config.loader import ConfigError
from fsm_trainer.config.schema import TrainConfig, check_type, unstructure_config
from fsm_trainer.config.values import blame
from fsm_trainer.errors import FsmTrainerError
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
    signature_of,
    type_hints,
)

_LOADER_KEYS = ("samples_per_gpu", "workers_per_gpu", "shuffle", "drop_last", "persistent_workers", "pin_memory",
                "seed_samples")

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
    hints = type_hints(fn)
    sig = signature_of(fn)
    params = sig.parameters if sig is not None else {}
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


__all__ = [
    "build_optimizers", "check_call", "check_config", "constructing", "is_optimizer_dict", "run_device", "scaled_lr",
    "validate", "without_effect", "wrapper_kwargs",
]
