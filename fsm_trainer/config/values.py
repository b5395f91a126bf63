"""Value checks of a config, beyond its shape: what torch and mmcv need of the numbers and names.

The schema (:mod:`fsm_trainer.config.schema`) checks types; the builders' dry calls
(:func:`fsm_trainer.config.validate.check_call`) check what the builders check. This module
checks the rest, each problem as ``"<dotted path>: <value> is not allowed; allowed: <what>"``:

* no number anywhere in the config is NaN;
* the optimizer: ``lr`` finite and > 0, ``momentum``/``weight_decay`` (and other rates) finite
  and >= 0, every number finite, then a dry construction of the torch optimizer on one
  parameter (torch's own checks) and of ``paramwise_cfg`` on a small module;
* ``optimizer_config.grad_clip.max_norm`` finite and > 0, ``norm_type`` > 0;
* LR/momentum schedules: ``gamma`` finite and > 0, minima finite and >= 0, every number finite;
* batch sizes ints in ``1..2**20``, workers in ``0..1024``, every ``*_dataloader`` key typed;
* ``evaluation``: ``metric`` names, ``save_best`` among the keys those metrics return, ``rule``;
* ``by_epoch=True`` in an iter-based run, for every hook;
* hooks whose optional package is missing (TensorBoard, MLflow, tqdm), with the ``pip install`` line;
* ``seed`` in torch's range, ``dist_params`` keys and types.

>>> number_errors(float("nan"), "optimizer.lr", gt=0)
['optimizer.lr: nan is not allowed; allowed: a finite number > 0']
>>> number_errors(0, "data.samples_per_gpu", ge=1, le=2**20, integer=True)
['data.samples_per_gpu: 0 is not allowed; allowed: an int in 1..1048576']
>>> number_errors(2.0, "grad_clip.norm_type", gt=0, allow_inf=True)
[]
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

MAX_BATCH = 2**20
"""The largest ``samples_per_gpu`` accepted."""
MAX_WORKERS = 1024
"""The largest ``workers_per_gpu`` accepted."""
SEED_RANGE = (-(2**63), 2**64 - 1)
"""``torch.manual_seed``'s range."""

LOADER_TYPES: dict[str, str] = {
    "samples_per_gpu": "int", "workers_per_gpu": "int", "shuffle": "bool", "drop_last": "bool",
    "persistent_workers": "bool", "pin_memory": "bool", "seed_samples": "bool",
}
"""The keys a ``data.*_dataloader`` dict may have, and their kinds."""

EXTRAS: dict[str, tuple[str, str]] = {
    "fsm_trainer.hooks.tensorboard": ("tensorboard",
                                      "pip install tensorboard (or pip install 'fsm-trainer[tensorboard]')"),
    "fsm_trainer.hooks.mlflow": ("mlflow", "pip install mlflow-skinny (or pip install 'fsm-trainer[mlflow]')"),
    "fsm_trainer.hooks.progress": ("tqdm", "pip install tqdm (or pip install 'fsm-trainer[progress]')"),
    "fsm_trainer.hooks.wandb": ("wandb", "pip install wandb (or pip install 'fsm-trainer[wandb]')"),
}
"""Hook modules that need an optional package: ``module -> (package, install line)``."""

_RATES_NONNEG = ("momentum", "weight_decay", "dampening", "eps", "alpha", "lr_decay", "initial_accumulator_value",
                 "rho", "lambd", "momentum_decay")
_SCHEDULE_POSITIVE = ("gamma", "div_factor", "final_div_factor")
_SCHEDULE_NONNEG = ("min_lr", "min_lr_ratio", "min_momentum", "min_momentum_ratio", "power")


def is_number(x: Any) -> bool:
    """A real number, not a bool.

    >>> is_number(1), is_number(1.5), is_number(True), is_number("1")
    (True, True, False, False)
    """
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _allowed(*, gt: float | None, ge: float | None, lt: float | None, le: float | None, integer: bool,
             allow_inf: bool) -> str:
    if integer:
        lo = ge if ge is not None else (math.floor(gt) + 1 if gt is not None else None)
        hi = le if le is not None else (math.ceil(lt) - 1 if lt is not None else None)
        if lo is not None and hi is not None:
            return f"an int in {lo}..{hi}"
        if lo is not None:
            return f"an int >= {lo}"
        return f"an int <= {hi}" if hi is not None else "an int"
    bounds = [f"> {gt:g}" if gt is not None else "", f">= {ge:g}" if ge is not None else "",
              f"< {lt:g}" if lt is not None else "", f"<= {le:g}" if le is not None else ""]
    bound = " and ".join(b for b in bounds if b)
    kind = "a number (or inf)" if allow_inf else "a finite number"
    return f"{kind} {bound}".rstrip()


def number_errors(value: Any, path: str, *, gt: float | None = None, ge: float | None = None,
                  lt: float | None = None, le: float | None = None, integer: bool = False,
                  allow_inf: bool = False) -> list[str]:
    """``[]`` if ``value`` is a number within the bounds, else one message naming ``path`` and what is allowed."""
    allowed = _allowed(gt=gt, ge=ge, lt=lt, le=le, integer=integer, allow_inf=allow_inf)
    if _within(value, gt=gt, ge=ge, lt=lt, le=le, integer=integer, allow_inf=allow_inf):
        return []
    return [f"{path}: {_show(value)} is not allowed; allowed: {allowed}"]


def _within(v: Any, *, gt: float | None, ge: float | None, lt: float | None, le: float | None, integer: bool,
            allow_inf: bool) -> bool:
    if isinstance(v, bool) or not (isinstance(v, int) if integer else is_number(v)):
        return False
    if isinstance(v, float) and (math.isnan(v) or (math.isinf(v) and not allow_inf)):
        return False
    lower = (gt is None or v > gt) and (ge is None or v >= ge)
    upper = (lt is None or v < lt) and (le is None or v <= le)
    return lower and upper


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def nan_paths(obj: Any, path: str) -> Iterator[str]:
    """The dotted paths of the NaN floats in ``obj`` (dicts, lists, tuples).

    >>> list(nan_paths({"a": [1.0, float("nan")], "b": {"c": float("nan")}}, "x"))
    ['x.a[1]', 'x.b.c']
    """
    if isinstance(obj, float) and math.isnan(obj):
        yield path
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from nan_paths(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from nan_paths(v, f"{path}[{i}]")


def _numbers(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    if is_number(obj):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")


def _finite(obj: Any, path: str) -> list[str]:
    return [f"{p}: {v!r} is not allowed; allowed: a finite number" for p, v in _numbers(obj, path)
            if isinstance(v, float) and not math.isfinite(v)]


# --------------------------------------------------------------------------- optimizer


def optimizer_errors(opt: Mapping[str, Any], cls: Any, path: str = "optimizer", *, paramwise: bool = True) -> list[str]:
    """Values of ``optimizer`` at ``path`` (``cls`` is its resolved class): ranges, then dry constructions
    (``paramwise``: also of ``paramwise_cfg`` with the default constructor's rules)."""
    errors: list[str] = []
    if "lr" in opt:
        errors += number_errors(opt["lr"], f"{path}.lr", gt=0)
    for key in _RATES_NONNEG:
        if key in opt and is_number(opt[key]):
            errors += number_errors(opt[key], f"{path}.{key}", ge=0)
    if "betas" in opt and isinstance(opt["betas"], (list, tuple)):
        for i, b in enumerate(opt["betas"]):
            errors += number_errors(b, f"{path}.betas[{i}]", ge=0, lt=1)
    args = {k: v for k, v in opt.items() if k not in ("type", "paramwise_cfg", "constructor")}
    for k, v in args.items():
        if k not in ("lr", "betas") and k not in _RATES_NONNEG:
            errors += _finite(v, f"{path}.{k}")
    if errors:
        return errors
    import torch

    try:
        cls([torch.nn.Parameter(torch.zeros(1))], **args)
    except Exception as exc:  # torch's own checks of its arguments
        return [blame(exc, path, args)]
    if paramwise and opt.get("paramwise_cfg") is not None:
        errors += _paramwise_errors({**opt, "type": cls}, path)
    return errors


def _paramwise_errors(opt: Mapping[str, Any], root: str = "optimizer") -> list[str]:
    import torch

    from fsm_trainer.optim import CUSTOM_KEY_FIELDS, PARAMWISE_KEYS, build_optimizer

    pw = opt["paramwise_cfg"]
    path = f"{root}.paramwise_cfg"
    errors: list[str] = []
    if isinstance(pw, Mapping):
        for key in PARAMWISE_KEYS:
            if key not in pw:
                continue
            if key == "bypass_duplicate":
                if not isinstance(pw[key], bool):
                    errors.append(f"{path}.{key}: {_show(pw[key])} is not allowed; allowed: True or False")
            elif key == "custom_keys":
                custom = pw[key]
                if isinstance(custom, Mapping):
                    for name, spec in custom.items():
                        if isinstance(spec, Mapping):
                            for field in CUSTOM_KEY_FIELDS:
                                if field in spec:
                                    errors += number_errors(spec[field], f"{path}.custom_keys.{name}.{field}", ge=0)
            else:
                errors += number_errors(pw[key], f"{path}.{key}", ge=0)
    if errors:
        return errors
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3, groups=2), torch.nn.BatchNorm2d(2), torch.nn.Linear(2, 2))
    try:
        build_optimizer(module, {k: v for k, v in opt.items() if k != "constructor"})
    except Exception as exc:
        text = str(exc).removeprefix("paramwise_cfg.").removeprefix("paramwise_cfg: ")
        return [f"{path}: {text}" if not text.startswith(path) else text]
    return []


def grad_clip_errors(optimizer_config: Mapping[str, Any] | None) -> list[str]:
    """``optimizer_config.grad_clip``: ``None`` or a dict with ``max_norm`` finite > 0 and ``norm_type`` > 0."""
    if not isinstance(optimizer_config, Mapping) or optimizer_config.get("grad_clip") is None:
        return []
    gc = optimizer_config["grad_clip"]
    path = "optimizer_config.grad_clip"
    if not isinstance(gc, Mapping):
        return [f"{path}: {_show(gc)} is not allowed; allowed: None or dict(max_norm=..., norm_type=2)"]
    allowed = ("max_norm", "norm_type", "error_if_nonfinite", "foreach")
    errors = [f"{path}.{k}: unknown key; allowed: {', '.join(allowed)}" for k in gc if k not in allowed]
    if "max_norm" not in gc:
        errors.append(f"{path}.max_norm: required key missing (a finite number > 0)")
    else:
        errors += number_errors(gc["max_norm"], f"{path}.max_norm", gt=0)
    if "norm_type" in gc:
        nt = gc["norm_type"]
        if nt not in ("inf", "-inf"):
            errors += number_errors(nt, f"{path}.norm_type", gt=0, allow_inf=True)
    for key in ("error_if_nonfinite", "foreach"):
        if key in gc and not (isinstance(gc[key], bool) or (key == "foreach" and gc[key] is None)):
            errors.append(f"{path}.{key}: {_show(gc[key])} is not allowed; allowed: True or False")
    return errors


# --------------------------------------------------------------------------- schedules


def schedule_errors(key: str, kw: Mapping[str, Any]) -> list[str]:
    """Numbers of an ``lr_config``/``momentum_config``: all finite; rates > 0; minima >= 0."""
    errors: list[str] = []
    for k, v in kw.items():
        path = f"{key}.{k}"
        if k in _SCHEDULE_POSITIVE and is_number(v):
            errors += number_errors(v, path, gt=0)
        elif k in _SCHEDULE_NONNEG and is_number(v):
            errors += number_errors(v, path, ge=0)
        elif k in ("max_lr", "base_momentum", "max_momentum"):
            for p, x in _numbers(v, path):
                errors += number_errors(x, p, gt=0) if k == "max_lr" else number_errors(x, p, ge=0)
        elif k in ("step", "periods"):
            for p, x in _numbers(v, path):
                errors += number_errors(x, p, ge=1, integer=True)
        else:
            errors += _finite(v, path)
    return errors


# --------------------------------------------------------------------------- data


def loader_errors(data: Any) -> list[str]:
    """``data.samples_per_gpu``/``workers_per_gpu`` bounds and every ``data.*_dataloader`` key's type and bounds."""
    errors = number_errors(data.samples_per_gpu, "data.samples_per_gpu", ge=1, le=MAX_BATCH, integer=True)
    errors += number_errors(data.workers_per_gpu, "data.workers_per_gpu", ge=0, le=MAX_WORKERS, integer=True)
    for split in ("train", "val", "test"):
        over = getattr(data, f"{split}_dataloader")
        for k, v in over.items():
            path = f"data.{split}_dataloader.{k}"
            kind = LOADER_TYPES.get(k)
            if kind is None:
                continue  # reported as an unknown key
            if k == "samples_per_gpu":
                errors += number_errors(v, path, ge=1, le=MAX_BATCH, integer=True)
            elif k == "workers_per_gpu":
                errors += number_errors(v, path, ge=0, le=MAX_WORKERS, integer=True)
            elif not isinstance(v, bool):
                errors.append(f"{path}: {_show(v)} is not allowed; allowed: True or False")
    return errors


# --------------------------------------------------------------------------- evaluation


def metric_keys(metric: Any) -> list[str] | None:
    """The keys the built-in ``metric`` (a name or a list of names) returns; ``None`` if unknown.

    >>> metric_keys(["accuracy", "top5", "cross_entropy"])
    ['accuracy', 'top5_accuracy', 'loss']
    >>> metric_keys("f1") is None
    True
    """
    from fsm_trainer.metrics import get_metric

    items = [metric] if isinstance(metric, str) or callable(metric) else metric
    if not isinstance(items, (list, tuple)) or not items:
        return None
    keys: list[str] = []
    for m in items:
        if not isinstance(m, str):
            return None
        try:
            fn = get_metric(m)
        except ValueError:
            return None
        keys.append("loss" if m == "cross_entropy" else getattr(fn, "__name__", m))
    return keys


def declared_metrics(dataset: Any) -> tuple[str, ...] | None:
    """The metric names a dataset (class or instance) with ``evaluate`` declares: ``METRICS`` or
    ``allowed_metrics`` (a list of names); ``None`` when it declares none (its ``evaluate`` decides)."""
    for attr in ("METRICS", "allowed_metrics"):
        names = getattr(dataset, attr, None)
        if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
            return tuple(names)
    return None


def dataset_metric_errors(metric: Any, dataset: Any, where: str = "data.val") -> list[str]:
    """``evaluation.metric`` names the dataset (class or instance) does not declare (see :func:`declared_metrics`)."""
    known = declared_metrics(dataset)
    if known is None or metric is None:
        return []
    items = [metric] if isinstance(metric, str) else metric if isinstance(metric, (list, tuple)) else [metric]
    name = dataset.__name__ if isinstance(dataset, type) else type(dataset).__name__
    errors = []
    for i, m in enumerate(items):
        path = "evaluation.metric" if isinstance(metric, str) else f"evaluation.metric[{i}]"
        if not isinstance(m, str) or m not in known:
            errors.append(f"{path}: {_show(m)} is not a metric of {where}'s {name}.evaluate; allowed: "
                          f"{', '.join(map(repr, known))}")
    return errors


def evaluation_errors(evaluation: Mapping[str, Any] | None, dataset_cls: Any = None,
                      hook_keys: Sequence[str] | None = None) -> list[str]:
    """``evaluation``'s metric names and the keys the hook passes on.

    With a val dataset that has ``evaluate`` (mmcv's protocol), ``metric`` and every key the eval
    hook does not take (``hook_keys``) are ``evaluate``'s arguments: checked against its
    signature, and the metric names against the names it declares (:func:`declared_metrics`).
    Otherwise ``metric`` entries are built-in names, ``save_best`` is one of the keys they
    return, and other keys are errors.
    """
    if not isinstance(evaluation, Mapping):
        return []
    evaluate = getattr(dataset_cls, "evaluate", None) if dataset_cls is not None else None
    passed = {k: v for k, v in evaluation.items() if hook_keys is not None and k not in hook_keys and k != "type"}
    if callable(evaluate):
        from fsm_trainer.registry import check_kwargs

        given = {**passed, **({"metric": evaluation["metric"]} if "metric" in evaluation else {})}
        what = f"{dataset_cls.__name__}.evaluate (data.val)"
        kwarg_errors = check_kwargs(evaluate, given, "evaluation", what=what, provided=("self", "results", "logger"))
        return kwarg_errors + dataset_metric_errors(evaluation.get("metric"), dataset_cls)
    errors: list[str] = []
    if hook_keys is not None:
        name = dataset_cls.__name__ if isinstance(dataset_cls, type) else "the val dataset"
        errors += [f"evaluation.{k}: unknown key for EvalHook{did_you_mean_text(k, hook_keys)}; mmcv passes other "
                   f"keys to dataset.evaluate, and data.val's {name} has no evaluate()" for k in passed]
    metric = evaluation.get("metric", "accuracy")
    items = [metric] if isinstance(metric, str) else metric
    allowed = "'accuracy', 'cross_entropy', 'top<k>' (e.g. 'top5'), or a list of them"
    if not isinstance(items, (list, tuple)) or not items:
        return [*errors, f"evaluation.metric: {_show(metric)} is not allowed; allowed: {allowed}"]
    tail = (" (a dataset's metric needs a val dataset with mmcv's evaluate(results, metric=...); "
            f"data.val's {dataset_cls.__name__} has none)" if isinstance(dataset_cls, type) else "")
    for i, m in enumerate(items):
        where = "evaluation.metric" if isinstance(metric, str) else f"evaluation.metric[{i}]"
        if isinstance(m, str) and metric_keys(m) is None:
            errors.append(f"{where}: {m!r} is not a metric; allowed: {allowed}{tail}")
        elif not isinstance(m, str) and not callable(m):
            errors.append(f"{where}: {_show(m)} is not allowed; allowed: {allowed}")
    if errors:
        return errors
    keys = metric_keys(metric)
    save_best = evaluation.get("save_best")
    if isinstance(save_best, str) and save_best != "auto" and keys is not None and save_best not in keys:
        errors.append(f"evaluation.save_best: {save_best!r} is not among the metrics' keys; allowed: 'auto', "
                      f"{', '.join(map(repr, keys))} (from metric={metric!r})")
    return errors


def did_you_mean_text(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` or ``""``."""
    from fsm_trainer.registry import did_you_mean

    return did_you_mean(word, choices)


# --------------------------------------------------------------------------- sampler, LR scaling


SAMPLER_TYPES = ("DistributedSampler", "ResumableSampler")
"""``sampler.type`` values: the shuffling, resumable sampler every train loader has (mmcls' default)."""


def sampler_errors(sampler: Mapping[str, Any] | None) -> list[str]:
    """mmcls' top-level ``sampler``: only the default sampler; others (``RepeatAugSampler``) are refused."""
    if sampler is None:
        return []
    kind = sampler.get("type")
    if kind not in SAMPLER_TYPES:
        return [f"sampler.type: {_show(kind)} is not supported; allowed: {', '.join(map(repr, SAMPLER_TYPES))} (the "
                "resumable shuffling sampler every train loader has; remove the key for it)"]
    return [f"sampler.{k}: unknown key; allowed: type" for k in sampler if k != "type"]


def auto_scale_lr_errors(auto: Mapping[str, Any] | None, optimizer: Mapping[str, Any]) -> list[str]:
    """mmdet's ``auto_scale_lr=dict(enable=False, base_batch_size=16)``."""
    if auto is None:
        return []
    errors = [f"auto_scale_lr.{k}: unknown key; allowed: enable, base_batch_size" for k in auto
              if k not in ("enable", "base_batch_size")]
    enable = auto.get("enable", False)
    if not isinstance(enable, bool):
        errors.append(f"auto_scale_lr.enable: {_show(enable)} is not allowed; allowed: True or False")
    if "base_batch_size" in auto:
        errors += number_errors(auto["base_batch_size"], "auto_scale_lr.base_batch_size", ge=1, integer=True)
    elif enable is True:
        errors.append("auto_scale_lr.base_batch_size: required with enable=True (the batch size the LR is for)")
    if enable is True and "lr" not in optimizer:
        errors.append("auto_scale_lr.enable: scaling needs optimizer.lr (a dict of optimizers is not scaled)")
    return errors


# --------------------------------------------------------------------------- hooks


def interval_errors(path: str, kwargs: Mapping[str, Any]) -> list[str]:
    """A hook's ``interval`` is an int >= 1 (``checkpoint_config``'s may be <= 0: only the last one, as mmcv)."""
    if "interval" not in kwargs or path == "checkpoint_config":
        return []
    return number_errors(kwargs["interval"], f"{path}.interval", ge=1, integer=True)


def loss_errors(loss: Mapping[str, Any], cls: Any) -> list[str]:
    """The arguments torch's losses only check at the first batch: ``reduction``, ``label_smoothing``."""
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.nn.modules.loss._Loss)):
        return []
    errors: list[str] = []
    if "reduction" in loss and loss["reduction"] not in ("none", "mean", "sum"):
        errors.append(f"loss.reduction: {_show(loss['reduction'])} is not allowed; allowed: 'none', 'mean', 'sum'")
    if "label_smoothing" in loss:
        errors += number_errors(loss["label_smoothing"], "loss.label_smoothing", ge=0, le=1)
    return errors


def key_errors(obj: Any, path: str = "") -> list[str]:
    """Dict keys that are not strings, anywhere in ``obj`` (YAML allows ``1: 2``; configs do not).

    >>> key_errors({"model": {1: 2, "a": [{None: 3}]}})
    ['model.1: config keys must be strings, got int', 'model.a[0].None: config keys must be strings, got NoneType']
    """
    errors: list[str] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            where = f"{path}.{k}" if path else str(k)
            if not isinstance(k, str):
                errors.append(f"{where}: config keys must be strings, got {type(k).__name__}")
            errors += key_errors(v, where)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            errors += key_errors(v, f"{path}[{i}]")
    return errors


def by_epoch_errors(path: str, kwargs: Mapping[str, Any], iter_based: bool) -> list[str]:
    """``by_epoch=True`` given to a hook of an iter-based run, whose epoch points never fire."""
    if iter_based and kwargs.get("by_epoch") is True:
        return [f"{path}.by_epoch: True is not allowed in an IterBasedRunner (its epoch points never fire); "
                "allowed: False"]
    return []


def missing_package(name: str) -> bool:
    """Whether the top-level package ``name`` cannot be imported (``sys.modules[name] = None`` counts)."""
    if name in sys.modules:
        return sys.modules[name] is None
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def extras_errors(path: str, hook_type: str, builder: Callable[..., Any]) -> list[str]:
    """A hook whose optional package is missing, with the ``pip install`` line."""
    module = getattr(builder, "__module__", "") or ""
    need = EXTRAS.get(module)
    if need is None or not missing_package(need[0]):
        return []
    return [f"{path}.type: {hook_type} needs the {need[0]} package, which is not installed: {need[1]}"]


# --------------------------------------------------------------------------- runtime


def runtime_errors(cfg: Any) -> list[str]:
    """``seed`` in torch's range; ``dist_params`` keys and types."""
    errors: list[str] = []
    if cfg.seed is not None:
        errors += number_errors(cfg.seed, "seed", ge=SEED_RANGE[0], le=SEED_RANGE[1], integer=True)
    dp = cfg.dist_params
    if dp is not None:
        for k, v in dp.items():
            if k == "backend":
                if not isinstance(v, str) or not v:
                    errors.append(f"dist_params.backend: {_show(v)} is not allowed; allowed: 'nccl', 'gloo' or "
                                  "another torch.distributed backend name")
            elif k == "timeout_s":
                errors += number_errors(v, "dist_params.timeout_s", gt=0)
            else:
                errors.append(f"dist_params.{k}: unknown key; allowed: backend, timeout_s")
    return errors


def blame(exc: BaseException | str, path: str, kwargs: Mapping[str, Any]) -> str:
    """``"<path>[.<key>]: <what exc says>"``: the key is added when exactly one of ``kwargs`` is named in it.

    >>> blame(ValueError("split must be 'train' or 'val', got 'test'"), "data.train", {"split": "test", "seed": 0})
    "data.train.split: split must be 'train' or 'val', got 'test'"
    """
    if isinstance(exc, BaseException):
        arg = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc
        text = str(arg).strip() or type(exc).__name__
        if not isinstance(exc, (ValueError, TypeError, KeyError)):
            text = f"{type(exc).__name__}: {text}"
    else:
        text = exc
    keys = [k for k in kwargs if isinstance(k, str)]
    assigned = [k for k in keys if re.search(rf"(?<![\w.]){re.escape(k)}\s*=", text)]
    leading = [k for k in keys if re.match(rf"{re.escape(k)}(?!\w)", text)]
    named = [k for k in keys if re.search(rf"(?<![\w.]){re.escape(k)}(?!\w)", text)]
    key = next((found[0] for found in (assigned, leading, named) if len(found) == 1), None)
    return f"{path}.{key}: {text}" if key is not None else f"{path}: {text}"


def all_nan_errors(raw: Mapping[str, Any], skip: Sequence[str] = ()) -> list[str]:
    """``"<path>: nan is not allowed ..."`` for every NaN in the config's known sections."""
    return [f"{p}: nan is not allowed; allowed: a number (NaN is never a valid setting)"
            for k, v in raw.items() if k not in skip for p in nan_paths(v, k)]


__all__ = [
    "EXTRAS",
    "LOADER_TYPES",
    "MAX_BATCH",
    "MAX_WORKERS",
    "SAMPLER_TYPES",
    "SEED_RANGE",
    "all_nan_errors",
    "auto_scale_lr_errors",
    "blame",
    "by_epoch_errors",
    "dataset_metric_errors",
    "declared_metrics",
    "did_you_mean_text",
    "evaluation_errors",
    "extras_errors",
    "grad_clip_errors",
    "interval_errors",
    "is_number",
    "key_errors",
    "loader_errors",
    "loss_errors",
    "metric_keys",
    "missing_package",
    "nan_paths",
    "number_errors",
    "optimizer_errors",
    "runtime_errors",
    "sampler_errors",
    "schedule_errors",
]
