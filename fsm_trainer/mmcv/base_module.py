"""mmcv 1.7.2's ``BaseModule`` (``mmcv.runner.base_module``) and its ``init_cfg`` initialisers.

:class:`BaseModule` is an ``nn.Module`` with an ``init_cfg``: :meth:`BaseModule.init_weights`
initialises the module by it (:func:`initialize`), then calls ``init_weights`` of every child
that has one, so a child's own ``init_cfg`` wins over its parent's. :class:`Sequential`,
:class:`ModuleList` and :class:`ModuleDict` are the container variants.

An ``init_cfg`` is a dict or a list of dicts, applied in order, each with a ``type``:

* ``Constant``: ``val`` (``nn.init.constant_``);
* ``Xavier``: ``gain=1``, ``distribution='normal'`` (``nn.init.xavier_normal_`` or ``xavier_uniform_``);
* ``Normal``: ``mean=0``, ``std=1`` (``nn.init.normal_``);
* ``TruncNormal``: ``mean=0``, ``std=1``, ``a=-2``, ``b=2`` (mmcv's inverse-CDF sampler: a uniform draw per
  value, so the values equal mmcv's for the same seed; ``nn.init.trunc_normal_`` of recent torch draws differently);
* ``Uniform``: ``a=0``, ``b=1`` (``nn.init.uniform_``);
* ``Kaiming``: ``a=0``, ``mode='fan_out'``, ``nonlinearity='relu'``, ``distribution='normal'``
  (``nn.init.kaiming_normal_`` or ``kaiming_uniform_``);
* ``Caffe2Xavier``: Kaiming uniform with ``a=1``, ``mode='fan_in'``, ``nonlinearity='leaky_relu'``;
* ``Pretrained``: ``checkpoint``, ``prefix=None``, ``map_location=None`` (and ``allow_numpy=False``, see
  :func:`~fsm_trainer.mmcv.checkpoint.load_checkpoint`): loads the weights of a checkpoint directory
  or ``.pth`` file, those under ``prefix`` (with it removed) when given.

Every type but ``Pretrained`` also takes ``bias=0`` (the value the bias is filled with),
``bias_prob`` (a float: the bias becomes ``-log((1 - p) / p)``) and ``layer`` (a class name
or a list of them). As mmcv's: the initialiser applies to the modules of the tree (children
first, in ``nn.Module.apply`` order) whose class name, or the name of one of its direct base
classes, is in ``layer``; without ``layer`` it applies to none. ``override`` (a dict or a
list of dicts with a ``name``) then initialises the submodule ``name`` and everything in it,
whatever its classes, with the override's own ``type`` and keys, or with the outer
config's when it has only ``name``. The random draws happen in mmcv's order, so a seeded
model is initialised to the same values as by mmcv.

>>> import torch
>>> class Head(BaseModule):
...     def __init__(self):
...         super().__init__(init_cfg=dict(type="Constant", val=0.5, bias=1, layer="Linear",
...                                        override=dict(type="Constant", name="cls", val=2)))
...         self.fc, self.cls = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
>>> head = Head()
>>> head.init_weights()
>>> head.fc.weight.unique().tolist(), head.fc.bias.unique().tolist(), head.cls.weight.unique().tolist()
([0.5], [1.0], [2.0])
>>> head.is_init
True
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from fsm_trainer.errors import ArgumentTypeError, FsmTrainerError, MappingKeyError

_log = logging.getLogger("fsm_trainer")

InitCfg = dict[str, Any] | list[dict[str, Any]]
"""An ``init_cfg``: one initialiser config or a list of them."""


class InitCfgError(FsmTrainerError, ValueError):
    """An ``init_cfg`` is invalid: a bad value or override; the message names the entry."""


class InitCfgTypeError(InitCfgError, ArgumentTypeError):
    """An ``init_cfg`` entry has the wrong type, or an initialiser gets a key it does not take or lacks one it
    needs (mmcv raises ``TypeError`` for each)."""


class InitCfgKeyError(InitCfgError, MappingKeyError):
    """An ``init_cfg`` entry has no ``type``, or not an initialiser's (mmcv's registry raises ``KeyError``)."""


_COMMON = {"bias": 0, "bias_prob": None, "layer": None}
_OWN: dict[str, dict[str, Any]] = {
    "Constant": {"val": ...},
    "Xavier": {"gain": 1, "distribution": "normal"},
    "Normal": {"mean": 0, "std": 1},
    "TruncNormal": {"mean": 0, "std": 1, "a": -2, "b": 2},
    "Uniform": {"a": 0.0, "b": 1.0},
    "Kaiming": {"a": 0, "mode": "fan_out", "nonlinearity": "relu", "distribution": "normal"},
    "Caffe2Xavier": {},
}
_PRETRAINED = {"checkpoint": ..., "prefix": None, "map_location": None, "allow_numpy": False}
TYPES = (*_OWN, "Pretrained")
"""The initialiser types an ``init_cfg`` may name."""


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float))


def _arguments(cfg: Mapping[str, Any], allowed: Mapping[str, Any]) -> dict[str, Any]:
    kind = cfg["type"]
    unknown = sorted(set(cfg) - set(allowed) - {"type"})
    if unknown:
        msg = f"init_cfg type={kind!r}: unknown key(s) {unknown}; allowed: {sorted(allowed)}"
        raise InitCfgTypeError(msg)
    args = {k: cfg.get(k, default) for k, default in allowed.items()}
    missing = sorted(k for k, v in args.items() if v is ...)
    if missing:
        msg = f"init_cfg type={kind!r}: missing key(s) {missing}"
        raise InitCfgTypeError(msg)
    return args


def _layers(kind: str, layer: Any) -> list[str]:
    if layer is None:
        return []
    if isinstance(layer, str):
        return [layer]
    if isinstance(layer, list) and all(isinstance(x, str) for x in layer):
        return list(layer)
    msg = f"init_cfg type={kind!r}: layer must be a str or a list of str, got {layer!r}"
    raise InitCfgTypeError(msg)


def _bias(kind: str, bias: Any, bias_prob: Any) -> float:
    if not _is_number(bias):
        msg = f"init_cfg type={kind!r}: bias must be a number, got {bias!r}"
        raise InitCfgTypeError(msg)
    if bias_prob is None:
        return float(bias)
    if not isinstance(bias_prob, float) or not 0.0 < bias_prob < 1.0:
        msg = f"init_cfg type={kind!r}: bias_prob must be a float in (0, 1), got {bias_prob!r}"
        raise InitCfgTypeError(msg)
    return float(-np.log((1 - bias_prob) / bias_prob))


def _distribution(kind: str, value: Any) -> str:
    if value not in ("normal", "uniform"):
        msg = f"init_cfg type={kind!r}: distribution must be 'normal' or 'uniform', got {value!r}"
        raise InitCfgError(msg)
    return str(value)


def _trunc_normal(tensor: torch.Tensor, mean: float, std: float, a: float, b: float) -> torch.Tensor:
    """Fill ``tensor`` from N(mean, std^2) truncated to [a, b] by the inverse CDF, as mmcv 1.7.2.

    One uniform draw per element in the CDF range of [a, b], mapped through the inverse normal
    CDF and clamped. (``nn.init.trunc_normal_`` of recent torch rejects and redraws instead,
    which consumes the random stream differently.)
    """

    def cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        low, high = cdf((a - mean) / std), cdf((b - mean) / std)
        tensor.uniform_(2 * low - 1, 2 * high - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
    return tensor


def _weight_init(kind: str, args: Mapping[str, Any]) -> Callable[[torch.Tensor], Any]:
    """The function that fills a weight tensor for initialiser ``kind``."""
    if kind == "Constant":
        val = args["val"]
        return lambda w: nn.init.constant_(w, val)
    if kind == "Xavier":
        gain, dist = args["gain"], _distribution(kind, args["distribution"])
        return (lambda w: nn.init.xavier_uniform_(w, gain=gain)) if dist == "uniform" else (
            lambda w: nn.init.xavier_normal_(w, gain=gain))
    if kind == "Normal":
        mean, std = args["mean"], args["std"]
        return lambda w: nn.init.normal_(w, mean, std)
    if kind == "TruncNormal":
        mean, std, a, b = args["mean"], args["std"], args["a"], args["b"]
        return lambda w: _trunc_normal(w, mean, std, a, b)
    if kind == "Uniform":
        a, b = args["a"], args["b"]
        return lambda w: nn.init.uniform_(w, a, b)
    if kind == "Caffe2Xavier":
        args = {"a": 1, "mode": "fan_in", "nonlinearity": "leaky_relu", "distribution": "uniform"}
    a, mode, nonlinearity = args["a"], args["mode"], args["nonlinearity"]
    if mode not in ("fan_in", "fan_out"):
        msg = f"init_cfg type={kind!r}: mode must be 'fan_in' or 'fan_out', got {mode!r}"
        raise InitCfgError(msg)
    if _distribution(kind, args["distribution"]) == "uniform":
        return lambda w: nn.init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity)
    return lambda w: nn.init.kaiming_normal_(w, a=a, mode=mode, nonlinearity=nonlinearity)


def _class_names(m: nn.Module) -> set[str]:
    """The class name of ``m`` and the names of its class's direct bases (what ``layer`` matches)."""
    return {type(m).__name__, *(b.__name__ for b in type(m).__bases__)}


def _pretrained(module: nn.Module, args: Mapping[str, Any]) -> None:
    from fsm_trainer.mmcv.checkpoint import _load_checkpoint_with_prefix, load_checkpoint, load_state_dict

    path, prefix = args["checkpoint"], args["prefix"]
    if prefix is None:
        _log.info("load model from: %s", path)
        load_checkpoint(module, path, map_location=args["map_location"], strict=False, logger=_log,
                        allow_numpy=bool(args["allow_numpy"]))
    else:
        _log.info("load %s in model from: %s", prefix, path)
        state_dict = _load_checkpoint_with_prefix(prefix, path, map_location=args["map_location"],
                                                  allow_numpy=bool(args["allow_numpy"]))
        load_state_dict(module, state_dict, strict=False, logger=_log)


def _run_one(module: nn.Module, cfg: Mapping[str, Any], wholemodule: bool) -> None:
    """Apply one initialiser config (without ``override``) to ``module``."""
    if not isinstance(cfg, Mapping):
        msg = f"init_cfg entries must be dicts, got {cfg!r}"
        raise InitCfgTypeError(msg)
    kind = cfg.get("type")
    if kind not in TYPES:
        msg = f"init_cfg type={kind!r} is not one of {', '.join(TYPES)} (in {dict(cfg)})"
        raise InitCfgKeyError(msg)
    if kind == "Pretrained":
        _pretrained(module, _arguments(cfg, _PRETRAINED))
        return
    args = _arguments(cfg, {**_COMMON, **_OWN[kind]})
    layers = set(_layers(kind, args["layer"]))
    bias = _bias(kind, args["bias"], args["bias_prob"])
    fill = _weight_init(kind, args)

    def init(m: nn.Module) -> None:
        if not wholemodule and not layers & _class_names(m):
            return
        if hasattr(m, "weight") and m.weight is not None:
            fill(m.weight)  # type: ignore[arg-type]
        if hasattr(m, "bias") and m.bias is not None:
            nn.init.constant_(m.bias, bias)  # type: ignore[arg-type]

    module.apply(init)


def _entries(value: Any, what: str) -> list[dict[str, Any]]:
    """``value`` (a dict or a list of dicts, as ``init_cfg`` and ``override`` are) as a list of dicts."""
    if not isinstance(value, (dict, list)):
        msg = f"{what} must be a dict or a list of dicts, got {value!r}"
        raise InitCfgTypeError(msg)
    entries = [value] if isinstance(value, dict) else value
    for entry in entries:
        if not isinstance(entry, dict):
            msg = f"{what} entries must be dicts, got {entry!r}"
            raise InitCfgTypeError(msg)
    return entries


def _run_override(module: nn.Module, override: Any, outer: Mapping[str, Any]) -> None:
    for entry in _entries(override, "override"):
        cfg = copy.deepcopy(entry)
        name = cfg.pop("name", None)
        if name is None:
            msg = f"override {entry!r} needs the key 'name' (the attribute of the submodule to initialise)"
            raise InitCfgError(msg)
        if not cfg:
            cfg = dict(outer)
        elif "type" not in cfg:
            msg = f"override {entry!r} needs a 'type' when it has keys other than 'name'"
            raise InitCfgError(msg)
        target = getattr(module, name, None)
        if not isinstance(target, nn.Module):
            msg = (f"override name={name!r}: {type(module).__name__} has no submodule of that name "
                   f"(init_cfg {cfg})")
            raise InitCfgError(msg)
        _run_one(target, cfg, wholemodule=True)


def initialize(module: nn.Module, init_cfg: InitCfg) -> None:
    """Initialise ``module`` by ``init_cfg`` (mmcv's ``mmcv.cnn.initialize``); see the module docstring.

    Raises:
        InitCfgKeyError: no ``type``, or an unknown one (a ``KeyError``).
        InitCfgTypeError: a value of the wrong type, a key the initialiser does not take or a
            missing one (a ``TypeError``).
        InitCfgError: a bad value or override (a ``ValueError``); the two above derive from it.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv1d(2, 2, 1), torch.nn.Linear(2, 2))
    >>> initialize(net, [dict(type="Constant", layer="Conv1d", val=1), dict(type="Constant", layer="Linear", val=2)])
    >>> net[0].weight.unique().tolist(), net[1].weight.unique().tolist()
    ([1.0], [2.0])
    """
    for entry in _entries(init_cfg, "init_cfg"):
        cfg = copy.deepcopy(entry)
        override = cfg.pop("override", None)
        _run_one(module, cfg, wholemodule=False)
        if override is not None:
            cfg.pop("layer", None)
            _run_override(module, override, cfg)


class BaseModule(nn.Module):
    """mmcv's ``BaseModule``: an ``nn.Module`` initialised by its ``init_cfg`` in :meth:`init_weights`.

    Args:
        init_cfg: a dict or a list of dicts (see the module docstring); deep-copied.
    """

    def __init__(self, init_cfg: InitCfg | None = None) -> None:
        super().__init__()
        self._is_init = False
        self.init_cfg: InitCfg | None = copy.deepcopy(init_cfg)

    @property
    def is_init(self) -> bool:
        """Whether :meth:`init_weights` has run."""
        return self._is_init

    def init_weights(self) -> None:
        """Initialise by ``init_cfg``, then call ``init_weights`` of every child that has one.

        As mmcv's: an ``init_cfg`` that is a single ``Pretrained`` dict loads the weights and
        stops there (the children keep them, and ``is_init`` stays ``False``); a second call
        warns and does nothing.

        Raises:
            InitCfgError: ``init_cfg`` is invalid.
        """
        name = type(self).__name__
        if self._is_init:
            warnings.warn(f"init_weights of {name} has been called more than once.", stacklevel=2)
            return
        if self.init_cfg:
            _log.info("initialize %s with init_cfg %s", name, self.init_cfg)
            initialize(self, self.init_cfg)
            if isinstance(self.init_cfg, dict) and self.init_cfg.get("type") == "Pretrained":
                return
        for child in self.children():
            init = getattr(child, "init_weights", None)
            if callable(init):
                init()
        self._is_init = True

    def __repr__(self) -> str:
        text = super().__repr__()
        return f"{text}\ninit_cfg={self.init_cfg}" if self.init_cfg else text


class Sequential(BaseModule, nn.Sequential):
    """mmcv's ``Sequential``: ``nn.Sequential(*modules)`` with an ``init_cfg``."""

    def __init__(self, *args: nn.Module, init_cfg: InitCfg | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.Sequential.__init__(self, *args)


class ModuleList(BaseModule, nn.ModuleList):
    """mmcv's ``ModuleList``: ``nn.ModuleList(modules)`` with an ``init_cfg``."""

    def __init__(self, modules: Iterable[nn.Module] | None = None, init_cfg: InitCfg | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleList.__init__(self, modules)


class ModuleDict(BaseModule, nn.ModuleDict):
    """mmcv's ``ModuleDict``: ``nn.ModuleDict(modules)`` with an ``init_cfg``."""

    def __init__(self, modules: Mapping[str, nn.Module] | None = None, init_cfg: InitCfg | None = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleDict.__init__(self, modules)


__all__ = [
    "TYPES",
    "BaseModule",
    "InitCfg",
    "InitCfgError",
    "InitCfgKeyError",
    "InitCfgTypeError",
    "ModuleDict",
    "ModuleList",
    "Sequential",
    "initialize",
]
