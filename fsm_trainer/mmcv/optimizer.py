"""mmcv's optimizer registries and constructors: ``OPTIMIZERS``, ``OPTIMIZER_BUILDERS``,
``DefaultOptimizerConstructor``, ``build_optimizer_constructor`` and ``build_optimizer``.

:data:`OPTIMIZERS` and :data:`OPTIMIZER_BUILDERS` store their entries in
:data:`fsm_trainer.registry.OPTIMIZERS` and :data:`fsm_trainer.registry.OPTIMIZER_CONSTRUCTORS`,
the registries the config path reads: a constructor registered with
``@OPTIMIZER_BUILDERS.register_module()`` (from a module named in ``custom_imports``) is used
by ``fsm-trainer train`` when the config names it in ``optimizer.constructor``, and is called as
mmcv calls it, ``Constructor(optimizer_cfg=..., paramwise_cfg=...)(model)``.

The parameter-wise rules of :class:`DefaultOptimizerConstructor` are those of
:func:`fsm_trainer.optim.paramwise_groups` (mmcv 1.7.2's). As in mmcv, they are applied by
:meth:`DefaultOptimizerConstructor.add_params`, once per module, recursing into the children
through ``self.add_params``: a subclass overriding ``add_params`` (mmcls/mmseg's
``LearningRateDecayOptimizerConstructor``) sees every module, and may call
``super().add_params`` for the default rules.

>>> from torch import nn
>>> opt = build_optimizer(nn.Linear(2, 1), dict(type="SGD", lr=0.1, weight_decay=1e-4,
...                       paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=0.0)))
>>> [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
[(0.1, 0.0001), (0.2, 0.0)]
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fsm_trainer import registry as _fsm
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.registry import Registry, build_from_cfg
from fsm_trainer.optim import CUSTOM_KEY_FIELDS, PARAMWISE_KEYS, paramwise_groups, torch_optimizers


class OptimizerConstructorError(FsmTrainerError, ValueError):
    """An optimizer constructor's ``optimizer_cfg`` or ``paramwise_cfg`` has an invalid value."""


class OptimizerConstructorTypeError(OptimizerConstructorError, TypeError):
    """An optimizer constructor's ``optimizer_cfg`` or ``paramwise_cfg`` (or a part of it) has the wrong type."""


OPTIMIZERS = Registry("optimizer", backend=_fsm.OPTIMIZERS)
"""Optimizers by name: every ``torch.optim`` optimizer, and what is registered here or in
:data:`fsm_trainer.registry.OPTIMIZERS` (the same entries)."""

OPTIMIZER_BUILDERS = Registry("optimizer builder", backend=_fsm.OPTIMIZER_CONSTRUCTORS)
"""Optimizer constructors by name: :class:`DefaultOptimizerConstructor`, and what is registered here or
in :data:`fsm_trainer.registry.OPTIMIZER_CONSTRUCTORS` (the same entries; ``optimizer.constructor``
of a config names them)."""

for _name, _cls in torch_optimizers().items():
    if _name not in _fsm.OPTIMIZERS:  # a user's optimizer registered under a torch name stays
        _fsm.OPTIMIZERS.register(_name, obj=_cls)


class DefaultOptimizerConstructor:
    """mmcv's default optimizer constructor: ``DefaultOptimizerConstructor(optimizer_cfg, paramwise_cfg)(model)``.

    Without ``paramwise_cfg`` the optimizer gets one group with every parameter of the model;
    with it, one group per parameter, its ``lr`` and ``weight_decay`` set by the rules of
    :func:`fsm_trainer.optim.paramwise_groups` (``custom_keys``, ``bias_lr_mult``,
    ``bias_decay_mult``, ``norm_decay_mult``, ``dwconv_decay_mult``, ``bypass_duplicate``;
    ``dcn_offset_lr_mult`` is accepted and, as in mmcv built without its compiled ops, has no
    effect). A parameter that does not require gradients gets a group of its own without
    ``lr`` or ``weight_decay``.

    Subclasses override :meth:`add_params` (called once per module, recursively) or
    :meth:`__call__`; extra keys of ``paramwise_cfg`` are theirs. This class itself refuses
    unknown ``paramwise_cfg`` keys and ``custom_keys`` fields (mmcv ignores them; a typo there
    changes nothing).

    Args:
        optimizer_cfg: ``dict(type=..., lr=..., weight_decay=..., ...)``: an optimizer of
            :data:`OPTIMIZERS` (a name, an import path ``'pkg.module:Name'`` or a class) and its arguments.
        paramwise_cfg: the parameter-wise rules (``None``: none).

    Attributes:
        optimizer_cfg: as given.
        paramwise_cfg: as given, ``{}`` for ``None``.
        base_lr: ``optimizer_cfg['lr']`` or ``None``.
        base_wd: ``optimizer_cfg['weight_decay']`` or ``None``.

    Raises:
        OptimizerConstructorTypeError: ``optimizer_cfg``, ``paramwise_cfg`` or ``custom_keys`` is not a dict.
        OptimizerConstructorError: a decay multiplier without ``weight_decay``; an unknown key.

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    >>> ctor = DefaultOptimizerConstructor(dict(type="SGD", lr=0.1, weight_decay=1e-4),
    ...                                    dict(norm_decay_mult=0.0, custom_keys={"0.weight": dict(lr_mult=0.5)}))
    >>> [(g["lr"], g["weight_decay"]) for g in ctor(model).param_groups]
    [(0.05, 0.0001), (0.1, 0.0001), (0.1, 0.0), (0.1, 0.0)]
    """

    def __init__(self, optimizer_cfg: dict[str, Any], paramwise_cfg: dict[str, Any] | None = None) -> None:
        if not isinstance(optimizer_cfg, Mapping):
            msg = f"optimizer_cfg must be a dict, got {type(optimizer_cfg).__name__} {optimizer_cfg!r:.60}"
            raise OptimizerConstructorTypeError(msg)
        self.optimizer_cfg = optimizer_cfg
        self.paramwise_cfg: Any = {} if paramwise_cfg is None else paramwise_cfg
        self.base_lr: Any = optimizer_cfg.get("lr")
        self.base_wd: Any = optimizer_cfg.get("weight_decay")
        self._validate_cfg()

    def _validate_cfg(self) -> None:
        """Check ``paramwise_cfg`` against ``base_lr``/``base_wd`` (mmcv's checks, and unknown keys for this class)."""
        pw = self.paramwise_cfg
        if not isinstance(pw, Mapping):
            msg = f"paramwise_cfg must be a dict or None, got {type(pw).__name__} {pw!r:.60}"
            raise OptimizerConstructorTypeError(msg)
        custom = pw.get("custom_keys", {})
        if not isinstance(custom, Mapping):
            msg = f"paramwise_cfg.custom_keys must be a dict, got {type(custom).__name__} {custom!r:.60}"
            raise OptimizerConstructorTypeError(msg)
        strict = type(self) is DefaultOptimizerConstructor
        for key, spec in custom.items():
            if not isinstance(spec, Mapping):
                msg = f"paramwise_cfg.custom_keys[{key!r}] must be a dict, got {type(spec).__name__} {spec!r:.60}"
                raise OptimizerConstructorTypeError(msg)
            unknown = sorted(set(spec) - set(CUSTOM_KEY_FIELDS))
            if strict and unknown:
                msg = (f"paramwise_cfg.custom_keys[{key!r}]: unknown field(s) {', '.join(map(repr, unknown))}; "
                       f"allowed: {', '.join(CUSTOM_KEY_FIELDS)}")
                raise OptimizerConstructorError(msg)
            if "decay_mult" in spec and self.base_wd is None:
                msg = (f"paramwise_cfg.custom_keys[{key!r}] has decay_mult={spec['decay_mult']!r} but optimizer_cfg "
                       "has no weight_decay; give optimizer_cfg['weight_decay']")
                raise OptimizerConstructorError(msg)
        for key in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult"):
            if key in pw and self.base_wd is None:
                msg = (f"paramwise_cfg.{key}={pw[key]!r} needs optimizer_cfg['weight_decay'], which is not given "
                       f"(optimizer_cfg={dict(self.optimizer_cfg)!r:.120})")
                raise OptimizerConstructorError(msg)
        if strict:
            unknown = sorted(set(pw) - set(PARAMWISE_KEYS))
            if unknown:
                msg = (f"paramwise_cfg: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                       f"{', '.join(PARAMWISE_KEYS)} (a subclass of DefaultOptimizerConstructor may read others)")
                raise OptimizerConstructorError(msg)

    def _is_in(self, param_group: Mapping[str, Any], param_group_list: list[dict[str, Any]]) -> bool:
        """Whether a parameter of ``param_group`` is already in one of the groups of ``param_group_list``."""
        ids = {id(p) for g in param_group_list for p in g["params"]}
        return any(id(p) in ids for p in param_group["params"])

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str = "",
                   is_dcn_module: int | float | None = None) -> None:
        """Append a group per parameter of ``module`` to ``params``, then do the same for each child.

        The module's own parameters come first (named ``f"{prefix}.{name}"`` for ``custom_keys``),
        then each child's, through ``self.add_params(params, child, prefix=...)``, so an
        override in a subclass is called for every module. With ``bypass_duplicate``, a
        parameter already in ``params`` is skipped, with a warning.

        Args:
            params: the param groups so far; appended to in place.
            module: the module whose parameters are added.
            prefix: the module's path in the model (``''`` for the model, ``'backbone.layer1'``...).
            is_dcn_module: accepted as mmcv's; without deformable convolution ops it has no effect.

        Raises:
            OptimizerConstructorError: the rules need ``lr`` and ``optimizer_cfg`` has none.
        """
        del is_dcn_module
        own = [name for name, _ in module.named_parameters(recurse=False)]
        if own:
            self._add_own_params(params, module, prefix, own)
        for child_name, child in module.named_children():
            self.add_params(params, child, prefix=f"{prefix}.{child_name}" if prefix else child_name,
                            is_dcn_module=False)

    def _add_own_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str, own: list[str]) -> None:
        if self.base_lr is None:
            msg = (f"paramwise_cfg={dict(self.paramwise_cfg)!r:.120} sets per-parameter learning rates, which needs "
                   f"optimizer_cfg['lr']; optimizer_cfg has none: {dict(self.optimizer_cfg)!r:.120}")
            raise OptimizerConstructorError(msg)
        rules = {k: v for k, v in self.paramwise_cfg.items() if k in PARAMWISE_KEYS and k != "bypass_duplicate"}
        # paramwise_groups names the parameters of a child "<child name>.<param>": the module is put
        # under a holder as the child named ``prefix``, so custom_keys see its path in the model.
        holder = nn.Module()
        holder._modules[prefix] = module  # the prefix may contain dots, which add_module refuses
        # paramwise_groups gives the module's own parameters first, one group each, then its children's
        # (computed and dropped: a model is walked once per level of nesting, cheap next to building it).
        groups = paramwise_groups(holder, rules, lr=self.base_lr, weight_decay=self.base_wd)[:len(own)]
        bypass = bool(self.paramwise_cfg.get("bypass_duplicate", False))
        for name, group in zip(own, groups, strict=True):
            if bypass and group["params"][0].requires_grad and self._is_in(group, params):
                where = f"{prefix}.{name}" if prefix else name
                warnings.warn(f"parameter {where} is already in a param group: skipped (bypass_duplicate=True)",
                              stacklevel=3)
                continue
            params.append(group)

    def __call__(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer over ``model``'s parameters (a wrapper with ``.module`` is unwrapped)."""
        module: nn.Module = getattr(model, "module", model)
        optimizer_cfg = dict(self.optimizer_cfg)
        if not self.paramwise_cfg:
            optimizer_cfg["params"] = module.parameters()
        else:
            params: list[dict[str, Any]] = []
            self.add_params(params, module)
            optimizer_cfg["params"] = params
        optimizer: torch.optim.Optimizer = build_from_cfg(optimizer_cfg, OPTIMIZERS)
        return optimizer


OPTIMIZER_BUILDERS._builtin_class("DefaultOptimizerConstructor", DefaultOptimizerConstructor)


def build_optimizer_constructor(cfg: Mapping[str, Any]) -> Any:
    """mmcv's ``build_optimizer_constructor``: ``cfg`` names a constructor of :data:`OPTIMIZER_BUILDERS`.

    >>> build_optimizer_constructor(dict(type="DefaultOptimizerConstructor", optimizer_cfg=dict(type="SGD", lr=0.1)))
    ... # doctest: +ELLIPSIS
    <fsm_trainer.mmcv.optimizer.DefaultOptimizerConstructor object at ...>
    """
    return build_from_cfg(cfg, OPTIMIZER_BUILDERS)


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> Any:
    """mmcv's ``build_optimizer``: the optimizer of ``cfg`` over ``model``, made by ``cfg['constructor']``.

    ``constructor`` (default ``'DefaultOptimizerConstructor'``) names a constructor of
    :data:`OPTIMIZER_BUILDERS`; it is built with ``optimizer_cfg`` (``cfg`` without
    ``constructor`` and ``paramwise_cfg``) and ``paramwise_cfg``, then called with ``model``.
    ``cfg`` is not modified.

    Raises:
        KeyError: the constructor or the optimizer type is not registered.
        OptimizerConstructorError: see :class:`DefaultOptimizerConstructor`.
    """
    optimizer_cfg = copy.deepcopy(dict(cfg))
    constructor = optimizer_cfg.pop("constructor", "DefaultOptimizerConstructor")
    paramwise_cfg = optimizer_cfg.pop("paramwise_cfg", None)
    ctor = build_optimizer_constructor(dict(type=constructor, optimizer_cfg=optimizer_cfg, paramwise_cfg=paramwise_cfg))
    return ctor(model)


__all__ = [
    "OPTIMIZERS", "OPTIMIZER_BUILDERS", "DefaultOptimizerConstructor", "OptimizerConstructorError",
    "OptimizerConstructorTypeError", "build_optimizer", "build_optimizer_constructor",
]
