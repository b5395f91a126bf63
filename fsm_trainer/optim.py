"""``build_optimizer``: mmcv 1.7.2's optimizer config (``DefaultOptimizerConstructor``) for torch.optim.

``cfg = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4, paramwise_cfg=dict(...))``
gives the optimizer mmcv builds: without ``paramwise_cfg`` one group of all parameters;
with it, one group per parameter, its ``lr``/``weight_decay`` scaled by the rules below.

Parameter-wise rules (mmcv's meanings, applied in this order of precedence):

* ``custom_keys={key: dict(lr_mult=, decay_mult=)}``: for a parameter whose full name
  (``"<module path>.<param>"``; top-level parameters are ``".<param>"``) contains ``key``;
  the longest such key wins, ties broken alphabetically; the other rules are then skipped.
* ``bias_lr_mult``: ``bias`` of any module except normalization layers.
* ``norm_decay_mult``: weight and bias of BatchNorm/InstanceNorm/GroupNorm/LayerNorm.
* ``dwconv_decay_mult``: depthwise ``Conv2d`` (``in_channels == groups``).
* ``bias_decay_mult``: other biases.
* ``bypass_duplicate``: skip (with a warning) parameters shared with an earlier group.
* ``dcn_offset_lr_mult``: accepted, and as in mmcv without its compiled ops, without effect.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from fsm_trainer.errors import FsmTrainerError

PARAMWISE_KEYS = (
    "custom_keys", "bias_lr_mult", "bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult",
    "dcn_offset_lr_mult", "bypass_duplicate",
)
"""The keys ``paramwise_cfg`` accepts."""
CUSTOM_KEY_FIELDS = ("lr_mult", "decay_mult")
_NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


class OptimizerConfigError(FsmTrainerError, ValueError):
    """An optimizer config is invalid: unknown type, key or value."""


def torch_optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    """Every optimizer class in ``torch.optim``, by name (as mmcv registers them).

    >>> "SGD" in torch_optimizers() and "AdamW" in torch_optimizers()
    True
    """
    out = {}
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer:
            out[name] = obj
    return out


def _optimizer_class(kind: Any) -> type[torch.optim.Optimizer]:
    if inspect.isclass(kind) and issubclass(kind, torch.optim.Optimizer):
        return kind
    known = torch_optimizers()
    if isinstance(kind, str) and kind in known:
        return known[kind]
    msg = f"optimizer type {kind!r} is unknown; allowed: {', '.join(sorted(known))} (or a torch.optim.Optimizer class)"
    raise OptimizerConfigError(msg)


def _check_kwargs(cls: type[torch.optim.Optimizer], kwargs: Mapping[str, Any]) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n not in ("self", "params")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        msg = (
            f"{cls.__name__}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(allowed)}, paramwise_cfg, constructor"
        )
        raise OptimizerConfigError(msg)


def _check_paramwise(pw: Any, base_lr: Any, base_wd: Any) -> dict[str, Any]:
    if not isinstance(pw, Mapping):
        msg = f"paramwise_cfg must be a dict or None, got {type(pw).__name__}"
        raise OptimizerConfigError(msg)
    # mmcv ignores unknown paramwise keys silently; a typo there changes nothing, so we refuse it.
    unknown = sorted(set(pw) - set(PARAMWISE_KEYS))
    if unknown:
        msg = f"paramwise_cfg: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(PARAMWISE_KEYS)}"
        raise OptimizerConfigError(msg)
    custom = pw.get("custom_keys", {})
    if not isinstance(custom, Mapping):
        msg = f"paramwise_cfg.custom_keys must be a dict, got {type(custom).__name__}"
        raise OptimizerConfigError(msg)
    for key, spec in custom.items():
        if not isinstance(spec, Mapping) or set(spec) - set(CUSTOM_KEY_FIELDS):
            msg = (
                f"paramwise_cfg.custom_keys[{key!r}] must be a dict with keys among "
                f"{', '.join(CUSTOM_KEY_FIELDS)}, got {spec!r}"
            )
            raise OptimizerConfigError(msg)
        if "decay_mult" in spec and base_wd is None:
            msg = f"paramwise_cfg.custom_keys[{key!r}] has decay_mult but the optimizer config has no weight_decay"
            raise OptimizerConfigError(msg)
        if base_lr is None:
            msg = f"paramwise_cfg.custom_keys needs the optimizer config's lr (custom key {key!r})"
            raise OptimizerConfigError(msg)
    for key in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult"):
        if key in pw and base_wd is None:
            msg = f"paramwise_cfg.{key} needs weight_decay in the optimizer config"
            raise OptimizerConfigError(msg)
    if "bias_lr_mult" in pw and base_lr is None:
        msg = "paramwise_cfg.bias_lr_mult needs lr in the optimizer config"
        raise OptimizerConfigError(msg)
    return dict(pw)


def paramwise_groups(model: nn.Module, paramwise_cfg: Mapping[str, Any], *, lr: float | None,
                     weight_decay: float | None) -> list[dict[str, Any]]:
    """One param group per parameter of ``model``, with mmcv's ``paramwise_cfg`` rules applied."""
    custom = paramwise_cfg.get("custom_keys", {})
    keys = sorted(sorted(custom), key=len, reverse=True)
    bias_lr = paramwise_cfg.get("bias_lr_mult", 1.0)
    bias_decay = paramwise_cfg.get("bias_decay_mult", 1.0)
    norm_decay = paramwise_cfg.get("norm_decay_mult", 1.0)
    dw_decay = paramwise_cfg.get("dwconv_decay_mult", 1.0)
    bypass = paramwise_cfg.get("bypass_duplicate", False)
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()

    def add(module: nn.Module, prefix: str) -> None:
        is_norm = isinstance(module, _NORMS)
        is_dw = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        for name, param in module.named_parameters(recurse=False):
            group: dict[str, Any] = {"params": [param]}
            if not param.requires_grad:
                groups.append(group)
                continue
            if bypass and id(param) in seen:
                warnings.warn(f"{prefix} is duplicate. It is skipped since bypass_duplicate=True", stacklevel=3)
                continue
            full = f"{prefix}.{name}"
            key = next((k for k in keys if k in full), None)
            if key is not None:
                group["lr"] = lr * custom[key].get("lr_mult", 1.0)
                if weight_decay is not None:
                    group["weight_decay"] = weight_decay * custom[key].get("decay_mult", 1.0)
            else:
                if name == "bias" and not is_norm:
                    group["lr"] = lr * bias_lr
                if weight_decay is not None:
                    if is_norm:
                        group["weight_decay"] = weight_decay * norm_decay
                    elif is_dw:
                        group["weight_decay"] = weight_decay * dw_decay
                    elif name == "bias":
                        group["weight_decay"] = weight_decay * bias_decay
            seen.add(id(param))
            groups.append(group)
        for child_name, child in module.named_children():
            add(child, f"{prefix}.{child_name}" if prefix else child_name)

    add(model, "")
    return groups


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Build ``cfg['type']`` (any ``torch.optim`` optimizer, by name) over ``model``'s parameters.

    Args:
        model: the module (a wrapper with ``.module``, e.g. DataParallel, is unwrapped).
        cfg: mmcv's optimizer config: ``type``, the optimizer's own arguments, and optionally
            ``paramwise_cfg`` (see the module docstring) and ``constructor``
            (only ``'DefaultOptimizerConstructor'``).

    Raises:
        OptimizerConfigError: unknown type, key, or a paramwise rule without its base value.

    >>> opt = build_optimizer(nn.Linear(2, 1), dict(type="SGD", lr=0.1, weight_decay=1e-4,
    ...                       paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0)))
    >>> [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
    [(0.1, 0.0001), (0.2, 0.0)]
    """
    if not isinstance(cfg, Mapping):
        msg = f"the optimizer config must be a dict, got {type(cfg).__name__}"
        raise OptimizerConfigError(msg)
    kwargs = dict(cfg)
    if "type" not in kwargs:
        msg = f"the optimizer config needs 'type'; allowed: {', '.join(sorted(torch_optimizers()))}"
        raise OptimizerConfigError(msg)
    cls = _optimizer_class(kwargs.pop("type"))
    constructor = kwargs.pop("constructor", "DefaultOptimizerConstructor")
    if constructor != "DefaultOptimizerConstructor":
        msg = f"constructor={constructor!r} is not supported; allowed: 'DefaultOptimizerConstructor'"
        raise OptimizerConfigError(msg)
    paramwise = kwargs.pop("paramwise_cfg", None)
    _check_kwargs(cls, kwargs)
    module: nn.Module = getattr(model, "module", model)
    if not paramwise:
        if paramwise is not None and not isinstance(paramwise, Mapping):
            _check_paramwise(paramwise, None, None)
        return cls(module.parameters(), **kwargs)
    pw = _check_paramwise(paramwise, kwargs.get("lr"), kwargs.get("weight_decay"))
    groups = paramwise_groups(module, pw, lr=kwargs.get("lr"), weight_decay=kwargs.get("weight_decay"))
    return cls(groups, **kwargs)


__all__ = ["CUSTOM_KEY_FIELDS", "PARAMWISE_KEYS", "OptimizerConfigError", "build_optimizer", "paramwise_groups",
           "torch_optimizers"]
