"""mmcv's ``Registry``, ``build_from_cfg`` and ``build_runner`` over fsm_trainer's registries.

:data:`HOOKS` stores what user code registers in :data:`fsm_trainer.registry.HOOKS`, the
registry the config path reads, so a class hook registered with
``@HOOKS.register_module()`` can be named in a config's ``custom_hooks`` and run by
``fsm-trainer train``. mmcv's own hook classes (``CheckpointHook``, ``StepLrUpdaterHook``...)
are found by name through :data:`HOOKS` (they take mmcv's constructor arguments), while the
config path keeps its own builders under those names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fsm_trainer import registry as _fsm
from fsm_trainer.registry import RegistryError


class Registry:
    """mmcv's ``Registry`` API (``register_module``, ``get``, ``build``, ``module_dict``).

    Args:
        name: the registry's name (``'hook'``).
        build_func: unused, accepted as mmcv's.
        parent, scope: unused, accepted as mmcv's.
        backend: the :class:`fsm_trainer.registry.Registry` holding the entries (a new one by default).
    """

    def __init__(self, name: str, build_func: Callable[..., Any] | None = None, parent: Any = None,
                 scope: str | None = None, *, backend: _fsm.Registry | None = None) -> None:
        del build_func, parent, scope
        self._name = name
        self.backend = backend if backend is not None else _fsm.Registry(name)
        self._builtin: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def module_dict(self) -> dict[str, Any]:
        """Every entry by name (lazy entries of the backend are imported)."""
        out = {n: self.get(n) for n in self.backend.names()}
        out.update(self._builtin)
        return out

    def __len__(self) -> int:
        return len(set(self.backend.names()) | set(self._builtin))

    def __contains__(self, key: object) -> bool:
        return key in self._builtin or key in self.backend

    def __repr__(self) -> str:
        return f"Registry(name={self._name}, items={sorted(set(self.backend.names()) | set(self._builtin))})"

    def _builtin_class(self, name: str, cls: Any) -> None:
        self._builtin[name] = cls

    def get(self, key: Any) -> Any:
        """The class or function registered as ``key``, or ``None`` (mmcv's behaviour)."""
        if not isinstance(key, str):
            return key if callable(key) else None
        if key in self._builtin:
            return self._builtin[key]
        try:
            return self.backend.get(key)
        except RegistryError:
            return None

    def _register(self, module: Any, name: str | list[str] | None, force: bool) -> None:
        if not callable(module):
            msg = f"module must be a class or a function, but got {type(module)}"
            raise TypeError(msg)
        names = [module.__name__] if name is None else [name] if isinstance(name, str) else list(name)
        for n in names:
            if not force and n in self:
                msg = f"{n} is already registered in {self._name}"
                raise KeyError(msg)
            self._builtin.pop(n, None)
            self.backend.register(n, force=True, obj=module)

    def register_module(self, name: str | list[str] | None = None, force: bool = False,
                        module: Any = None) -> Any:
        """Register ``module`` now, or return a decorator registering the decorated class (mmcv's API)."""
        if not isinstance(force, bool):
            msg = f"force must be a boolean, but got {type(force)}"
            raise TypeError(msg)
        if name is not None and not isinstance(name, (str, list)):
            msg = f"name must be either of None, an instance of str or a sequence of str, but got {type(name)}"
            raise TypeError(msg)
        if module is not None:
            self._register(module, name, force)
            return module

        def deco(cls: Any) -> Any:
            self._register(cls, name, force)
            return cls

        return deco

    def build(self, cfg: Mapping[str, Any], default_args: Mapping[str, Any] | None = None) -> Any:
        return build_from_cfg(cfg, self, default_args)


def build_from_cfg(cfg: Mapping[str, Any], registry: Registry | _fsm.Registry,
                   default_args: Mapping[str, Any] | None = None) -> Any:
    """mmcv's ``build_from_cfg``: ``registry.get(cfg['type'])(**rest, **default_args)``.

    Raises:
        TypeError: ``cfg`` is not a dict or has no ``type`` (and ``default_args`` neither).
        KeyError: the type is not registered.
    """
    if not isinstance(cfg, Mapping):
        msg = f"cfg must be a dict, but got {type(cfg)}"
        raise TypeError(msg)
    if "type" not in cfg and (default_args is None or "type" not in default_args):
        msg = f'`cfg` or `default_args` must contain the key "type", but got {dict(cfg)}\n{default_args}'
        raise KeyError(msg)
    if isinstance(registry, _fsm.Registry):
        registry = Registry(registry.name, backend=registry)
    args = dict(cfg)
    for k, v in (default_args or {}).items():
        args.setdefault(k, v)
    obj_type = args.pop("type")
    obj_cls = registry.get(obj_type)
    if obj_cls is None:
        msg = f"{obj_type} is not in the {registry.name} registry"
        raise KeyError(msg)
    try:
        return obj_cls(**args)
    except (TypeError, ValueError) as e:
        if type(e) in (TypeError, ValueError):  # mmcv names the class in the message
            msg = f"{getattr(obj_cls, '__name__', obj_cls)}: {e}"
            raise type(e)(msg) from e
        raise


HOOKS = Registry("hook", backend=_fsm.HOOKS)
"""Hooks: mmcv's hook classes by name, and everything registered in :data:`fsm_trainer.registry.HOOKS`."""

RUNNERS = Registry("runner")
"""Runners: ``EpochBasedRunner``, ``IterBasedRunner`` and user runners."""


def build_runner(cfg: Mapping[str, Any], default_args: Mapping[str, Any] | None = None) -> Any:
    """mmcv's ``build_runner``: ``cfg`` names a runner in :data:`RUNNERS`.

    >>> build_runner  # doctest: +ELLIPSIS
    <function build_runner at ...>
    """
    args = dict(cfg)
    constructor = args.pop("constructor", "DefaultRunnerConstructor")
    if constructor != "DefaultRunnerConstructor":
        msg = f"runner constructor {constructor!r}: only 'DefaultRunnerConstructor' exists here"
        raise KeyError(msg)
    return build_from_cfg(args, RUNNERS, default_args)


__all__ = ["HOOKS", "RUNNERS", "Registry", "build_from_cfg", "build_runner"]
