"""The shape of a training config, as attrs classes structured by a strict cattrs converter.

:func:`structure_config` turns the plain dict from :mod:`fsm_trainer.config.loader` into a
:class:`TrainConfig`. Structuring reports every wrong type, missing key and unknown key at
once, each with its path (``lr_config.step[1]: expected an int, got str 'x'``) and, for an
unknown key, the closest allowed one. The sections that configure hooks, models, datasets and
optimizers stay dicts here: :mod:`fsm_trainer.config.validate` checks them against what they
build.

Top-level names the schema does not know are kept as helper variables (mmcv configs define
``img_norm_cfg``, ``train_pipeline``... and use them in other keys), unless the name is close
to a known key (:func:`typo_rule`: one edit away, or close with a value of the key's shape):
``lr_confg`` is an error (did you mean ``lr_config``?), ``checkpoint_file = 'x.pth'`` is a
helper. Names starting with ``_`` are always helpers.

>>> cfg = structure_config({"model": {"type": "DigitsNet"}, "optimizer": {"type": "SGD", "lr": 0.1},
...     "data": {"samples_per_gpu": 32, "train": {"type": "DigitsDataset"}},
...     "runner": {"type": "EpochBasedRunner", "max_epochs": 2}})
>>> cfg.runner.max_epochs, cfg.workflow
(2, (('train', 1),))
>>> structure_config({"model": {}, "optimizer": {}, "data": {"samples_per_gpu": "32"}, "lr_confg": {}})
Traceback (most recent call last):
...
fsm_trainer.config.loader.ConfigError: invalid config: 4 errors
  lr_confg: unknown key; did you mean 'lr_config'? (1 edit away; a helper needs another name or a leading '_')
  data.samples_per_gpu: expected an int, got str '32'
  data.train: required key missing
  runner: required key missing
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

import attrs
import cattrs
import cattrs.v
from cattrs.errors import ForbiddenExtraKeysError

from fsm_trainer.config.loader import ConfigError
from fsm_trainer.errors import ArgumentTypeError
from fsm_trainer.registry import did_you_mean
from fsm_trainer.serialize import strict_bool, strict_float, strict_int, strict_str

Mode = Literal["train", "val"]


@attrs.frozen(kw_only=True)
class RunnerConfig:
    """``runner=dict(type='EpochBasedRunner', max_epochs=12)`` or ``IterBasedRunner`` with ``max_iters``."""

    type: Literal["EpochBasedRunner", "IterBasedRunner"]
    max_epochs: int | None = None
    max_iters: int | None = None

    @property
    def by(self) -> Literal["epoch", "iter"]:
        """``"epoch"`` or ``"iter"``."""
        return "epoch" if self.type == "EpochBasedRunner" else "iter"


@attrs.frozen(kw_only=True)
class LogConfig:
    """``log_config=dict(interval=50, hooks=[dict(type='TextLoggerHook')])``."""

    interval: int
    hooks: tuple[dict[str, Any], ...]


@attrs.frozen(kw_only=True)
class DataConfig:
    """mmcv's ``data=dict(samples_per_gpu, workers_per_gpu, train=dict(type=...), val=..., test=...)``.

    ``*_dataloader`` dicts override DataLoader arguments per split (``samples_per_gpu``,
    ``workers_per_gpu``, ``shuffle``, ``drop_last``, ``persistent_workers``), as mmdet 2.x does.
    """

    samples_per_gpu: int = 1
    workers_per_gpu: int = 0
    train: dict[str, Any]
    val: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    persistent_workers: bool = False
    train_dataloader: dict[str, Any] = attrs.field(factory=dict)
    val_dataloader: dict[str, Any] = attrs.field(factory=dict)
    test_dataloader: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TrainConfig:
    """A whole mmcv 1.x training config. The README section "Configs and the command line" lists every key."""

    model: dict[str, Any]
    data: DataConfig
    optimizer: dict[str, Any]
    runner: RunnerConfig
    workflow: tuple[tuple[Mode, int], ...] = (("train", 1),)
    # For a model without train_step/val_step (a plain nn.Module): batches are (inputs, targets)
    # and the loss is loss(model(inputs), targets). ``loss_fn`` is accepted as its alias.
    loss: dict[str, Any] | None = None
    optimizer_config: dict[str, Any] | None = attrs.field(factory=dict)
    lr_config: dict[str, Any] | None = None
    momentum_config: dict[str, Any] | None = None
    checkpoint_config: dict[str, Any] | None = None
    log_config: LogConfig | None = None
    custom_hooks: tuple[dict[str, Any], ...] = ()
    evaluation: dict[str, Any] | None = None
    work_dir: str | None = None
    resume_from: str | None = None
    load_from: str | None = None
    auto_resume: bool = False
    seed: int | None = None
    deterministic: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    custom_imports: dict[str, Any] | None = None
    fp16: dict[str, Any] | None = None
    # With `fsm-trainer train --launcher pytorch`: init_dist's keyword arguments (backend, timeout_s).
    dist_params: dict[str, Any] | None = None
    # With --launcher pytorch: how the model is made data-parallel (mmengine's key):
    # dict(type="MMDistributedDataParallel") (the default) or dict(type="MMFullyShardedDataParallel",
    # shard_modules=["Block"]) for FSDP.
    model_wrapper_cfg: dict[str, Any] | None = None
    # Where the model and batches go: "auto" (the LOCAL_RANK / current GPU when CUDA is available,
    # else CPU), "cpu", "cuda", "cuda:1", or None (nothing is moved: the model moves its batches).
    device: Any = "auto"
    # mmcv's gpu_ids: in a single-process run, gpu_ids=[k] with device "auto" trains on cuda:k.
    gpu_ids: tuple[int, ...] | None = None
    # torch.backends.cudnn.benchmark; TF32 for float32 matmuls; torch.set_float32_matmul_precision.
    cudnn_benchmark: bool = False
    allow_tf32: bool | None = None
    matmul_precision: str | None = None
    # torch.compile of the model's forward: True or dict(torch.compile's keyword arguments).
    compile: Any = None
    # mmcv runtime keys accepted for compatibility, without effect.
    opencv_num_threads: int | None = None
    mp_start_method: str | None = None
    # mmdet's train.py: with enable=True, optimizer.lr *= (ranks * samples_per_gpu) / base_batch_size.
    auto_scale_lr: dict[str, Any] | None = None
    # mmcv's legacy spelling of runner=dict(type='EpochBasedRunner', max_epochs=total_epochs).
    total_epochs: int | None = None
    # mmseg's legacy spelling of runner=dict(type='IterBasedRunner', max_iters=total_iters).
    total_iters: int | None = None
    # mmcls' train sampler: dict(type='DistributedSampler'), the default; other types are refused.
    sampler: dict[str, Any] | None = None
    # DistributedDataParallel's find_unused_parameters (under --launcher pytorch).
    find_unused_parameters: bool = False
    variables: dict[str, Any] = attrs.field(factory=dict)
    """Top-level helper names the schema does not use (``img_norm_cfg``...)."""


KNOWN_KEYS = tuple(f.name for f in attrs.fields(TrainConfig) if f.name != "variables")
ALIASES = {"loss_fn": "loss"}
"""Other spellings of top-level keys: ``loss_fn`` (the name of :func:`fsm_trainer.run`'s argument) is ``loss``."""
IGNORED_KEYS = ("opencv_num_threads", "mp_start_method")


# --------------------------------------------------------------------------- the converter


def _mapping(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        msg = f"expected a dict, got {type(value).__name__} {value!r:.40}"
        raise ArgumentTypeError(msg)
    return dict(value)


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (Union, types.UnionType)


def _is_literal(t: Any) -> bool:
    origin: object = typing.get_origin(t)
    return origin is Literal


def _shape_ok(value: Any, t: Any) -> bool:
    """Whether ``value`` has the outer shape of ``t`` (used to pick a union member)."""
    origin = typing.get_origin(t) or t
    if t is type(None):
        return value is None
    if origin is Literal:
        return value in typing.get_args(t)
    if t is bool:
        return isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping) or attrs.has(origin):
        return isinstance(value, Mapping)
    return t is Any


def _describe_type(t: Any) -> str:
    if t is type(None):
        return "None"
    if typing.get_origin(t) is Literal:
        return " or ".join(map(repr, typing.get_args(t)))
    origin = typing.get_origin(t)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(t) if a is not Ellipsis]
        if not args:
            return "a list"
        inner = _describe_type(args[0])
        for article in ("a ", "an "):
            if inner.startswith(article):
                return f"a list of {inner.removeprefix(article)}s"
        return f"a list of {inner}"
    if origin is dict:
        return "a dict"
    names = {int: "an int", float: "a number", str: "a string", bool: "True or False"}
    return names.get(t, getattr(t, "__name__", str(t)))


def _union_hook_factory(t: Any) -> Any:
    members = typing.get_args(t)

    def structure_union(value: Any, _: Any) -> Any:
        for m in members:
            if _shape_ok(value, m):
                return converter.structure(value, m)  # errors inside a member keep their paths
        allowed = " or ".join(_describe_type(m) for m in members)
        msg = f"expected {allowed}, got {type(value).__name__} {value!r:.40}"
        raise ArgumentTypeError(msg)

    return structure_union


def _literal_hook_factory(t: Any) -> Any:
    allowed = typing.get_args(t)

    def structure_literal(value: Any, _: Any) -> Any:
        if value not in allowed or isinstance(value, bool) != any(isinstance(a, bool) for a in allowed):
            hint = did_you_mean(value, [a for a in allowed if isinstance(a, str)]) if isinstance(value, str) else ""
            msg = f"{value!r:.40} is not allowed{hint or ';'} allowed: {', '.join(map(repr, allowed))}"
            raise ValueError(msg)  # cattrs collects it with its key path; structure_config raises ConfigError
        return value

    return structure_literal


converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
converter.register_structure_hook(int, strict_int)
converter.register_structure_hook(float, strict_float)
converter.register_structure_hook(str, strict_str)
converter.register_structure_hook(bool, strict_bool)
converter.register_structure_hook_func(lambda t: t == dict[str, Any], _mapping)
converter.register_structure_hook_func(lambda t: t is Any, lambda v, _: v)
converter.register_structure_hook_func(lambda t: t is type(None), lambda v, _: v)
converter.register_structure_hook_factory(_is_union, _union_hook_factory)
converter.register_structure_hook_factory(_is_literal, _literal_hook_factory)


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        return "; ".join(f"unknown key {k!r}{did_you_mean(k, allowed)}" for k in sorted(exc.extra_fields))
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, TypeError) and typing.get_origin(type_) in (list, tuple) and "not iterable" in str(exc):
        got = str(exc).split("'")[1] if str(exc).count("'") >= 2 else "something else"
        return f"expected {_describe_type(type_)}, got {got}"
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def path_errors(exc: BaseException, root: str = "") -> list[str]:
    """``["<path>: <problem>", ...]`` for a cattrs validation error (``root`` prefixes paths)."""
    if not isinstance(exc, cattrs.BaseValidationError):
        return [f"{root or '(config)'}: {exc}"]
    out = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_describe):
        desc, _, where = line.rpartition(" @ ")
        where = where.removeprefix("$").removeprefix(".")
        full = ".".join(p for p in (root, where) if p).replace(".[", "[")
        out.extend(_extra_key_lines(desc, full))
    return out


def _extra_key_lines(desc: str, where: str) -> list[str]:
    # cattrs reports extra keys at their parent; name each key itself.
    if not desc.startswith("unknown key "):
        return [f"{where or '(config)'}: {desc}"]
    lines = []
    for part in desc.split("; unknown key "):
        part = part.removeprefix("unknown key ")
        key, _, rest = part.partition("'")[2].partition("'")
        lines.append(f"{f'{where}.' if where else ''}{key}: unknown key{rest}")
    return lines


def check_type(value: Any, type_: Any, path: str) -> list[str]:
    """The path-named problems of ``value`` as a ``type_`` (``[]`` if none).

    >>> check_type([8, "x"], int | list[int], "lr_config.step")
    ["lr_config.step[1]: expected an int, got str 'x'"]
    """
    try:
        converter.structure(value, type_)
    except cattrs.BaseValidationError as exc:
        return path_errors(exc, path)
    except (TypeError, ValueError) as exc:
        return [f"{path}: {exc}"]
    return []


def structure_config(raw: Mapping[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` of ``raw``: every shape problem is reported at once.

    Raises:
        ConfigError: listing each problem with its key path.
    """
    if not isinstance(raw, Mapping):
        msg = f"a config must be a dict, got {type(raw).__name__}"
        raise ConfigError(msg)
    errors, known, helpers = split_keys(raw)
    from fsm_trainer.config.values import key_errors

    errors.extend(key_errors(known))
    if "runner" not in known and "total_epochs" in known:
        # mmcv's legacy path (EpochBasedRunner with max_epochs=total_epochs), as mmdet/mmpose 0.x train.py.
        known["runner"] = {"type": "EpochBasedRunner", "max_epochs": known["total_epochs"]}
    elif "runner" not in known and "total_iters" in known:
        # mmseg 0.x's train.py: IterBasedRunner with max_iters=total_iters.
        known["runner"] = {"type": "IterBasedRunner", "max_iters": known["total_iters"]}
    cfg = None
    try:
        cfg = converter.structure(known, TrainConfig)
    except Exception as exc:
        errors.extend(path_errors(exc))
    if errors:
        raise ConfigError(errors)
    assert cfg is not None
    return attrs.evolve(cfg, variables=helpers)


def split_keys(raw: Mapping[str, Any]) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """``(errors, known keys, helper variables)`` of a top-level config dict."""
    errors: list[str] = []
    known: dict[str, Any] = {}
    helpers: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(k, str) and k in ALIASES:
            if ALIASES[k] in raw:
                errors.append(f"{k}: give either {ALIASES[k]} or {k} (its alias), not both")
            else:
                known[ALIASES[k]] = v
        elif not isinstance(k, str):
            errors.append(f"{k!r}: config keys must be strings")
        elif k in KNOWN_KEYS:
            known[k] = v
        elif not k.startswith("_") and (rule := typo_rule(k, v)) is not None:
            errors.append(f"{k}: unknown key; did you mean {rule[0]!r}? ({rule[1]}; a helper needs another name "
                          "or a leading '_')")
        else:
            helpers[k] = v
    return errors, known, helpers


@functools.lru_cache(maxsize=4096)
def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with transpositions (optimal string alignment); remembered for the
    last few thousand pairs (a config's helper names are compared with every known key).

    >>> edit_distance("lr_confg", "lr_config"), edit_distance("optimzier", "optimizer")
    (1, 1)
    """
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


_FIELD_TYPES: dict[str, Any] = {}


def _field_type(key: str) -> Any:
    if not _FIELD_TYPES:
        hints = typing.get_type_hints(TrainConfig)
        _FIELD_TYPES.update({f.name: hints[f.name] for f in attrs.fields(TrainConfig)})
    return _FIELD_TYPES[key]


def typo_rule(name: str, value: Any) -> tuple[str, str] | None:
    """``(known key, the rule that fired)`` when the top-level ``name`` is a typo of a known key, else ``None``.

    A name is a typo when it is one edit away from a known key (whatever its value), or when
    its value has the shape the known key takes (a dict for ``lr_config``...) and the names
    are close (at most 2 edits, or a similarity of 0.85). Helper variables whose names are
    merely close but whose values have another shape (``checkpoint_file = 'x.pth'`` next to
    ``checkpoint_config``, ``custom_keys = {...}`` next to ``custom_hooks``) stay helpers.

    >>> typo_rule("lr_confg", {"policy": "step"})
    ('lr_config', '1 edit away')
    >>> typo_rule("checkpoint_file", "https://x/y.pth") is None, typo_rule("custom_keys", {"a": {}}) is None
    (True, True)
    >>> typo_rule("optimizer_cfg", {"type": "SGD"})
    ('optimizer_config', 'a dict like optimizer_config and close to its name (similarity 0.90)')
    """
    best: tuple[str, str] | None = None
    candidates = sorted(KNOWN_KEYS, key=lambda known: edit_distance(name, known))
    for known in candidates[:3]:
        d = edit_distance(name, known)
        if d == 1:
            return known, "1 edit away"
        ratio = difflib.SequenceMatcher(None, name, known).ratio()
        t = _field_type(known)
        members = [m for m in (typing.get_args(t) if _is_union(t) else (t,)) if m is not type(None)]
        fits = value is not None and any(_shape_ok(value, m) for m in members)
        if best is None and fits and (d <= 2 or ratio >= 0.85):
            shape = _describe_type(members[0])
            closeness = f"{d} edits away" if d <= 2 else f"close to its name (similarity {ratio:.2f})"
            best = known, f"{shape} like {known} and {closeness}"
    return best


def unstructure_config(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain data (tuples as lists), helper variables last."""
    data = converter.unstructure(cfg)
    variables = data.pop("variables", {})
    return {**data, **variables}


__all__ = [
    "ALIASES", "IGNORED_KEYS", "KNOWN_KEYS", "DataConfig", "LogConfig", "RunnerConfig", "TrainConfig", "check_type",
    "converter", "path_errors", "split_keys", "structure_config", "unstructure_config",
]
