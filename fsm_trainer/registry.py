"""Registries: names in configs resolved to callables once, at build time.

A :class:`Registry` maps a name (``type='DigitsNet'`` in a config) to a class or a function.
:meth:`Registry.build` takes mmcv's ``dict(type=..., **kwargs)``: ``type`` is a registered
name, an import path ``'pkg.module:Name'`` (imported when the config is built), or the class
itself. Keyword arguments are checked against the callable's signature first, so a typo is
reported with its path and a suggestion instead of a ``TypeError`` from inside ``__init__``.

>>> MODELS_ = Registry("model")
>>> @MODELS_.register()
... class Tiny:
...     def __init__(self, width=4):
...         self.width = width
>>> MODELS_.build(dict(type="Tiny", width=8)).width
8
>>> MODELS_.build(dict(type="Tiny", widht=8))
Traceback (most recent call last):
...
fsm_trainer.registry.RegistryError: model.widht: unknown key for Tiny; did you mean 'width'? Allowed: width
>>> MODELS_.build(dict(type="Tiyn"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fsm_trainer.registry.RegistryError: model.type: 'Tiyn' is not a registered model; did you mean 'Tiny'? ...
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import os
import sys
import typing
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from fsm_trainer.errors import ArgumentTypeError, FsmTrainerError, MappingKeyError

F = TypeVar("F", bound=Callable[..., Any])


class RegistryError(FsmTrainerError, ValueError):
    """A ``type`` cannot be resolved, or the arguments do not fit it; the message names the path."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""``.

    >>> did_you_mean("lr_confg", ["lr_config", "log_config"])
    "; did you mean 'lr_config'?"
    >>> did_you_mean("zzz", ["lr_config"])
    ''
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _choices(word: str, choices: Iterable[str], label: str) -> str:
    """``"; did you mean 'x'? <Label>: a, b"`` or ``"; <label>: a, b"``."""
    choices = [str(c) for c in choices]
    listing = ", ".join(choices) or "(none)"
    hint = did_you_mean(word, choices)
    return f"{hint} {label.capitalize()}: {listing}" if hint else f"; {label}: {listing}"


def import_module(name: str) -> Any:
    """``importlib.import_module(name)``, also finding modules in the current directory.

    ``python -m fsm_trainer`` has the current directory on ``sys.path``, the ``fsm-trainer``
    script does not; a module that is found nowhere else is looked for there too, so
    ``custom_imports`` and ``type='my_module:Name'`` work the same under both.

    Raises:
        ImportError: the module is not found, in the current directory either.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        cwd = os.getcwd()
        on_path = any(os.path.abspath(p or os.curdir) == cwd for p in sys.path)
        if exc.name != top or on_path or not (os.path.isdir(top) or os.path.isfile(f"{top}.py")):
            raise
    sys.path.append(cwd)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def import_path(spec: str, path: str = "type") -> Any:
    """The object named by ``'pkg.module:Name'`` (``Name`` may be dotted: ``'m:Outer.Inner'``).

    >>> import_path("collections:OrderedDict").__name__
    'OrderedDict'
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        msg = f"{path}: {spec!r} is not an import path; write 'pkg.module:Name'"
        raise RegistryError(msg)
    try:
        obj: Any = import_module(module_name)
    except ImportError as exc:
        msg = f"{path}: cannot import module {module_name!r} ({exc})"
        raise RegistryError(msg) from exc
    except (Exception, SystemExit) as exc:
        msg = f"{path}: importing module {module_name!r} raised {type(exc).__name__}: {exc}"
        raise RegistryError(msg) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("_")]
            msg = f"{path}: module {module_name!r} has no attribute {attr!r}{did_you_mean(part, names)}"
            raise RegistryError(msg) from None
    return obj


_SIGNATURES: weakref.WeakKeyDictionary[Any, inspect.Signature | None] = weakref.WeakKeyDictionary()
_HINTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    """``inspect.signature(fn)``, ``None`` where it has none (some builtins); worked out once per
    callable (validating a config asks for the same few builders' signatures many times)."""
    try:
        return _SIGNATURES[fn]
    except (KeyError, TypeError):  # not seen, or not weakly referenceable
        pass
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    with contextlib.suppress(TypeError):
        _SIGNATURES[fn] = sig
    return sig


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``typing.get_type_hints(fn)`` (a class: of its ``__init__``), ``{}`` where they cannot be
    evaluated; evaluated once per callable. The result is shared: do not change it."""
    target = fn.__init__ if isinstance(fn, type) else fn  # type: ignore[misc]
    try:
        return _HINTS[target]
    except (KeyError, TypeError):
        pass
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # annotations naming what is not importable here, or not annotations at all
        return {}
    with contextlib.suppress(TypeError):
        _HINTS[target] = hints
    return hints


def signature_params(fn: Callable[..., Any]) -> tuple[list[str], list[str], bool]:
    """``(allowed, required, takes_any)`` keyword names of ``fn`` (a class: its ``__init__``)."""
    sig = signature_of(fn)
    if sig is None:  # some builtins have no signature: accept anything
        return [], [], True
    allowed, required, any_kw = [], [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            any_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            allowed.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
    return allowed, required, any_kw


def check_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any], path: str, *, what: str | None = None,
                 provided: Iterable[str] = ()) -> list[str]:
    """The problems of calling ``fn(**kwargs)`` (unknown or missing arguments), as path-named messages.

    ``provided`` names arguments the caller adds itself (they count as given).
    """
    allowed, required, any_kw = signature_params(fn)
    label = what or getattr(fn, "__name__", repr(fn))
    errors = []
    if not any_kw:
        for key in kwargs:
            if key not in allowed:
                errors.append(f"{path}.{key}: unknown key for {label}{_choices(key, allowed, 'allowed')}")
    given = set(kwargs) | set(provided)
    errors.extend(f"{path}.{name}: required key missing for {label}" for name in required if name not in given)
    return errors


class Registry:
    """Names to callables (classes or factory functions) for one kind of config entry.

    Args:
        name: the kind, used in messages (``"hook"``, ``"model"``...).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._items: dict[str, Callable[..., Any]] = {}
        self._lazy: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {sorted(self.names())})"

    def __contains__(self, key: object) -> bool:
        return key in self._items or key in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted({*self._items, *self._lazy})

    def register(self, name: str | None = None, *, force: bool = False, obj: Any = None) -> Any:
        """Register ``obj``, or return a decorator registering the decorated callable.

        Args:
            name: the name configs use (default: the callable's ``__name__``).
            force: replace an existing entry instead of raising.
            obj: register this now instead of returning a decorator.

        Raises:
            MappingKeyError: the name is taken (and not ``force``); a ``KeyError``, as mmcv's.
            ArgumentTypeError: the object is not callable.
        """

        def add(fn: F) -> F:
            if not callable(fn):
                msg = f"{self.name} registry: {fn!r} is not callable"
                raise ArgumentTypeError(msg)
            key = name or fn.__name__
            if key in self and not force:
                msg = f"{key!r} is already registered in the {self.name} registry; pass force=True to replace it"
                raise MappingKeyError(msg)
            self._lazy.pop(key, None)
            self._items[key] = fn
            return fn

        if obj is not None:
            return add(obj)
        return add

    register_module = register  # mmcv's spelling

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``name`` for the import path ``target`` (``'pkg.module:attr'``), imported on first use."""
        if name not in self._items:
            self._lazy[name] = target

    def get(self, key: Any, path: str = "type") -> Callable[..., Any]:
        """The callable for ``key``: a registered name, an import path, or a callable given as is.

        Raises:
            RegistryError: naming ``path``, with the closest registered names.
        """
        if callable(key) and not isinstance(key, str):
            return key  # type: ignore[no-any-return]
        if not isinstance(key, str):
            msg = (f"{path}: expected a registered {self.name} name or an import path, "
                   f"got {type(key).__name__} {key!r:.40}")
            raise RegistryError(msg)
        if key in self._items:
            return self._items[key]
        if key in self._lazy:
            obj = import_path(self._lazy[key], path)
            self._items[key] = obj
            return obj  # type: ignore[no-any-return]
        if ":" in key:
            obj = import_path(key, path)
            if not callable(obj):
                msg = f"{path}: {key!r} is not callable"
                raise RegistryError(msg)
            return obj  # type: ignore[no-any-return]
        names = self.names()
        msg = (
            f"{path}: {key!r} is not a registered {self.name}{_choices(key, names, 'registered')}"
            " (or give an import path 'pkg.module:Name')"
        )
        raise RegistryError(msg)

    def build(
        self, cfg: Mapping[str, Any], path: str | None = None, default_args: Mapping[str, Any] | None = None
    ) -> Any:
        """Call ``cfg['type']`` with the other keys (and ``default_args`` the config does not set).

        Args:
            cfg: ``dict(type=..., **kwargs)``.
            path: where ``cfg`` is in the config, for messages (default: the registry's name).
            default_args: keyword arguments used unless ``cfg`` gives them (mmcv's ``default_args``).

        Raises:
            RegistryError: no ``type``, an unknown type, unknown or missing arguments.
        """
        path = path or self.name
        if not isinstance(cfg, Mapping):
            msg = f"{path}: expected a dict with a 'type' key, got {type(cfg).__name__}"
            raise RegistryError(msg)
        if "type" not in cfg:
            msg = f"{path}: missing key 'type'; registered {self.name}s: {', '.join(self.names())}"
            raise RegistryError(msg)
        kwargs = {**(default_args or {}), **{k: v for k, v in cfg.items() if k != "type"}}
        fn = self.get(cfg["type"], f"{path}.type")
        errors = check_kwargs(fn, kwargs, path, what=_label(cfg["type"], fn))
        if errors:
            raise RegistryError("\n".join(errors))
        return fn(**kwargs)


def _label(key: Any, fn: Any) -> str:
    return key if isinstance(key, str) else getattr(fn, "__name__", repr(fn))


HOOKS = Registry("hook")
"""Hook builders: ``(**kwargs) -> Hook | factory``; see :mod:`fsm_trainer.config.hookspec`."""
MODELS = Registry("model")
DATASETS = Registry("dataset")
OPTIMIZERS = Registry("optimizer")
LOSSES = Registry("loss")
"""Losses for models without ``train_step`` (the config's ``loss``): every ``torch.nn`` loss by name."""
OPTIMIZER_CONSTRUCTORS = Registry("optimizer constructor")
"""mmcv's optimizer constructors (``optimizer.constructor``): ``cls(optimizer_cfg, paramwise_cfg)(model)``
returns the optimizer; ``DefaultOptimizerConstructor`` ships."""

__all__ = [
    "DATASETS", "HOOKS", "LOSSES", "MODELS", "OPTIMIZERS", "OPTIMIZER_CONSTRUCTORS", "Registry", "RegistryError",
    "check_kwargs", "did_you_mean", "import_module", "import_path", "signature_of", "signature_params", "type_hints",
]
