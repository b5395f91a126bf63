"""Serve ``import mmcv.runner`` (and ``mmcv.utils``, ``mmcv.parallel``) from fsm_trainer's mmcv layer.

:func:`install` puts a finder first on :data:`sys.meta_path` that answers the module names of mmcv
1.7.2's ``mmcv.runner``, ``mmcv.utils`` and ``mmcv.parallel`` packages (every submodule of their
trees, ``mmcv.runner.hooks.lr_updater`` included) and the top-level ``mmcv``, so code written for
mmcv 1.x runs unchanged::

    import fsm_trainer.mmcv
    fsm_trainer.mmcv.install()

    from mmcv.runner import EpochBasedRunner, HOOKS       # fsm_trainer.mmcv's classes
    from mmcv.runner.hooks.lr_updater import CosineAnnealingLrUpdaterHook

Each served module is an alias: a name is looked up, at every access, in the fsm_trainer modules
that hold it (``mmcv.runner.*`` in :mod:`fsm_trainer.mmcv`, then in the submodule that defines it;
``mmcv.utils.*`` in ``fsm_trainer.mmcv.utils``; ``mmcv.parallel.*`` in ``fsm_trainer.mmcv.parallel``),
so names added to those modules later are found too. The top-level ``mmcv`` has ``__version__``
(``'1.7.2'``), ``version_info``, the ``mmcv.utils`` names (as mmcv's ``from .utils import *``) and
the served packages as attributes. Any other part of mmcv (``mmcv.ops``, ``mmcv.cnn``, ``mmcv.fileio``,
``mmcv.image``...) raises :class:`MmcvScopeError`, a :class:`ModuleNotFoundError`, on import.

:func:`install` refuses when a real mmcv is importable or imported: the layer would shadow it.
:func:`uninstall` removes the finder and the served modules.
"""

from __future__ import annotations
import __future__

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from fsm_trainer.mmcv.hook import MmcvCompatError

__all__ = ["MMCV_VERSION", "MmcvScopeError", "install", "installed", "uninstall"]

MMCV_VERSION = "1.7.2"
"""The mmcv version the layer reports as ``mmcv.__version__``: the API it follows."""

_PKG = "fsm_trainer.mmcv"
_UTILS = "fsm_trainer.mmcv.utils"
_PARALLEL = "fsm_trainer.mmcv.parallel"
_HOOKS = ("fsm_trainer.mmcv.hooks",)
_PROVIDED = ("runner", "utils", "parallel", "version")
_MISSING = object()


def _runner_table() -> dict[str, tuple[str, ...]]:
    """``mmcv.runner`` and its submodules -> the fsm_trainer modules holding their names, in lookup order."""
    sub: dict[str, tuple[str, ...]] = {
        "": (), "base_module": ("fsm_trainer.mmcv.base_module",), "base_runner": ("fsm_trainer.mmcv.runner",),
        "builder": ("fsm_trainer.mmcv.registry",), "checkpoint": ("fsm_trainer.mmcv.checkpoint",),
        "default_constructor": ("fsm_trainer.mmcv.optimizer",), "dist_utils": ("fsm_trainer.mmcv.dist_utils",),
        "epoch_based_runner": ("fsm_trainer.mmcv.runner",), "fp16_utils": ("fsm_trainer.mmcv.fp16",),
        "iter_based_runner": ("fsm_trainer.mmcv.runner",), "log_buffer": ("fsm_trainer.mmcv.misc",),
        "priority": ("fsm_trainer.priority",), "utils": ("fsm_trainer.mmcv.misc",),
        "optimizer": ("fsm_trainer.mmcv.optimizer",), "optimizer.builder": ("fsm_trainer.mmcv.optimizer",),
        "optimizer.default_constructor": ("fsm_trainer.mmcv.optimizer",),
        "hooks": _HOOKS, "hooks.hook": ("fsm_trainer.mmcv.hook", *_HOOKS), "hooks.logger": _HOOKS,
    }
    for name in ("checkpoint", "closure", "ema", "evaluation", "iter_timer", "lr_updater", "memory",
                 "momentum_updater", "optimizer", "profiler", "sampler_seed", "sync_buffer"):
        sub[f"hooks.{name}"] = _HOOKS
    for name in ("base", "clearml", "dvclive", "mlflow", "neptune", "pavi", "segmind", "tensorboard", "text",
                 "wandb"):
        sub[f"hooks.logger.{name}"] = _HOOKS
    # The package re-exports its submodules' names: fsm_trainer.mmcv does, and the modules behind them back it up.
    sub[""] = tuple(dict.fromkeys(t for targets in sub.values() for t in targets))
    return {("mmcv.runner." + k).rstrip("."): (_PKG, *v) for k, v in sub.items()}


def _served_table() -> dict[str, tuple[str, ...]]:
    """Every served alias module name -> its fsm_trainer lookup modules (mmcv 1.7.2's tree)."""
    table = _runner_table()
    table["mmcv.utils"] = (_UTILS,)
    for name in ("config", "device_type", "env", "ext_loader", "hub", "logging", "misc", "parrots_jit",
                 "parrots_wrapper", "path", "progressbar", "seed", "testing", "timer", "torch_ops", "trace",
                 "version_utils"):
        table[f"mmcv.utils.{name}"] = (_UTILS,)
    table["mmcv.utils.registry"] = (_UTILS, "fsm_trainer.mmcv.registry")
    table["mmcv.parallel"] = (_PARALLEL,)
    for name in ("_functions", "collate", "data_container", "data_parallel", "distributed",
                 "distributed_deprecated", "registry", "scatter_gather", "utils"):
        table[f"mmcv.parallel.{name}"] = (_PARALLEL,)
    return table


_ALIASES = _served_table()
_PACKAGES = frozenset(name.rsplit(".", 1)[0] for name in _ALIASES) | {"mmcv"}
_REBOUND = frozenset({"mmcv.parallel.collate"})
"""Submodules whose package binds a name of theirs over them (``mmcv.parallel.collate`` is the function)."""


class MmcvScopeError(MmcvCompatError, ModuleNotFoundError):
    """A part of mmcv that fsm_trainer's mmcv layer does not provide (``mmcv.ops``, ``mmcv.cnn``...) was imported."""


def _is_mmcv_name(name: str) -> bool:
    return name == "mmcv" or name.startswith("mmcv.")


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _load(target: str) -> ModuleType | None:
    """Import ``target``; ``None`` when it does not exist (an import error inside it propagates)."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name == target:
            return None
        raise


def _public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    skip = (ModuleType, __future__._Feature)  # modules, and ``annotations`` of ``from __future__ import annotations``
    return [n for n in dir(module) if not n.startswith("_") and not isinstance(getattr(module, n), skip)]


def _scope_message(what: str) -> str:
    return (f"{what}: fsm_trainer's mmcv layer provides mmcv.runner, mmcv.utils and mmcv.parallel only (and, at "
            f"top level, __version__ and the mmcv.utils names); mmcv.ops, mmcv.cnn, mmcv.fileio, mmcv.image and "
            f"the rest of mmcv are out of scope. Code that needs them runs on the real mmcv 1.x, without "
            f"fsm_trainer.mmcv.install().")


class _ServedModule(ModuleType):
    """A module answered by the finder (its class marks it for :func:`uninstall`)."""


class _AliasModule(_ServedModule):
    """``mmcv.<...>`` whose names are fsm_trainer's: each access looks them up in the modules of its table row."""

    def __getattr__(self, name: str) -> Any:
        if _is_dunder(name):
            if name == "__all__":  # for ``from mmcv.runner import *``: every public name of its modules
                return list(dict.fromkeys(n for m in self._targets() for n in _public_names(m)))
            raise AttributeError(name)
        child = f"{self.__name__}.{name}"
        if child in _ALIASES and child not in _REBOUND:
            return importlib.import_module(child)
        for module in self._targets():
            value = getattr(module, name, _MISSING)
            # fsm_trainer's modules are laid out differently from mmcv's: they are never forwarded.
            if value is not _MISSING and not isinstance(value, ModuleType):
                return value
        targets = _ALIASES[self.__name__]
        absent = [t for t in targets if _load(t) is None]
        note = f" ({', '.join(absent)} not available)" if absent else ""
        msg = (f"module {self.__name__!r} has no attribute {name!r}: fsm_trainer's mmcv layer looks it up in "
               f"{', '.join(targets)}{note}, and none provides it")
        raise AttributeError(msg, name=name, obj=self)

    def _targets(self) -> list[ModuleType]:
        """The fsm_trainer modules behind this one that exist, in lookup order."""
        return [m for m in map(_load, _ALIASES[self.__name__]) if m is not None]

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system sets each imported submodule on its package; mmcv's package keeps the name it bound.
        if f"{self.__name__}.{name}" in _REBOUND and isinstance(value, _ServedModule):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        names = set(self.__dict__)
        names.update(c.rsplit(".", 1)[1] for c in _ALIASES if c.rsplit(".", 1)[0] == self.__name__)
        for module in self._targets():
            names.update(_public_names(module))
        return sorted(names)

    def __repr__(self) -> str:
        return f"<module {self.__name__!r} (fsm_trainer mmcv layer: {', '.join(_ALIASES[self.__name__])})>"


class _TopModule(_ServedModule):
    """The top-level ``mmcv``: version, the served packages, and the ``mmcv.utils`` names."""

    def __getattr__(self, name: str) -> Any:
        if name in _PROVIDED:
            return importlib.import_module(f"mmcv.{name}")
        if _is_dunder(name) and name != "__all__":
            raise AttributeError(name)
        utils = _load(_UTILS)
        if name == "__all__":
            return ["__version__", "version_info", *([] if utils is None else _public_names(utils))]
        if utils is not None and name in _public_names(utils):
            return getattr(utils, name)
        msg = _scope_message(f"module 'mmcv' has no attribute {name!r}")
        raise AttributeError(msg, name=name, obj=self)

    def __dir__(self) -> list[str]:
        utils = _load(_UTILS)
        return sorted({*self.__dict__, *_PROVIDED, *([] if utils is None else _public_names(utils))})

    def __repr__(self) -> str:
        return f"<module 'mmcv' (fsm_trainer mmcv layer, mmcv {MMCV_VERSION} API)>"


def _version_constants() -> dict[str, Any]:
    return {"__version__": MMCV_VERSION, "version_info": tuple(int(x) for x in MMCV_VERSION.split("."))}


class _MmcvFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the served ``mmcv`` module names; refuses the rest of mmcv."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  /) -> importlib.machinery.ModuleSpec | None:
        del path, target
        if not _is_mmcv_name(fullname):
            return None
        if fullname == "mmcv" or fullname == "mmcv.version" or fullname in _ALIASES:
            spec = importlib.machinery.ModuleSpec(fullname, self, origin=__file__, is_package=fullname in _PACKAGES)
            spec.has_location = True  # ``__file__`` names this module: import errors show where names come from
            return spec
        if fullname.split(".")[1] in _PROVIDED:
            return None  # not a module of mmcv 1.7.2 either: the usual "No module named ..." error
        # No ``name``: ``from mmcv import ops`` then reports this error instead of a bare "cannot import name".
        raise MmcvScopeError(_scope_message(f"No module named {fullname!r}"))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if spec.name == "mmcv":
            return _TopModule("mmcv", f"mmcv {MMCV_VERSION}'s runner API served by fsm_trainer.mmcv.")
        if spec.name == "mmcv.version":
            return _ServedModule("mmcv.version", "mmcv's version, as served by fsm_trainer's mmcv layer.")
        return _AliasModule(spec.name, f"mmcv's {spec.name}, served from {', '.join(_ALIASES[spec.name])}.")

    def exec_module(self, module: ModuleType) -> None:
        if module.__name__ in ("mmcv", "mmcv.version"):
            module.__dict__.update(_version_constants())
        if module.__name__ == "mmcv.version":
            module.__dict__["__all__"] = ["__version__", "version_info"]


_FINDER = _MmcvFinder()
_LOCK = threading.Lock()


def installed() -> bool:
    """Whether :func:`install` is in effect (its finder is on :data:`sys.meta_path`).

    >>> isinstance(installed(), bool)
    True
    """
    return _FINDER in sys.meta_path


def _version_in(spec: importlib.machinery.ModuleSpec) -> str:
    """The ``__version__`` assigned in the found mmcv's ``version.py`` or ``__init__.py``, read without importing it."""
    origin = spec.origin or ""
    candidates = [os.path.join(d, "version.py") for d in spec.submodule_search_locations or ()] + [origin]
    for path in candidates:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                found = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", fh.read(), re.MULTILINE)
        except OSError:
            continue
        if found:
            return found.group(1)
    return "(unknown version)"


def _refuse_real_mmcv() -> None:
    """Raise :class:`MmcvCompatError` when an mmcv this layer did not serve is imported or importable."""
    advice = ("fsm_trainer's mmcv layer would shadow it. Uninstall it (pip uninstall mmcv mmcv-full) to run mmcv "
              "1.x code on fsm_trainer, or keep using that mmcv and do not call fsm_trainer.mmcv.install().")
    for key, module in list(sys.modules.items()):
        if _is_mmcv_name(key) and module is not None and not isinstance(module, _ServedModule):
            top = sys.modules.get("mmcv", module)
            version = getattr(top, "__version__", "(unknown version)")
            where = getattr(top, "__file__", None) or getattr(top, "__path__", None) or "an unknown location"
            msg = f"install() refused: mmcv {version} is already imported ({key!r} from {where}); {advice}"
            raise MmcvCompatError(msg)
    try:
        spec = importlib.util.find_spec("mmcv")
    except (ImportError, ValueError):
        spec = None
    # A folder named mmcv without __init__.py (a namespace package, no origin) is not an mmcv distribution.
    if spec is not None and spec.origin is not None and spec.loader is not _FINDER:
        where = os.path.dirname(spec.origin) if spec.submodule_search_locations is not None else spec.origin
        msg = f"install() refused: mmcv {_version_in(spec)} is importable from {where}; {advice}"
        raise MmcvCompatError(msg)


def install() -> None:
    """Make ``import mmcv.runner`` (``mmcv.utils``, ``mmcv.parallel``, ``mmcv``) load fsm_trainer's mmcv layer.

    Call it before the first ``import mmcv``; calling it again is a no-op. The finder goes first on
    :data:`sys.meta_path`. Importing another part of mmcv (``mmcv.ops``, ``mmcv.cnn``...) then raises
    :class:`MmcvScopeError`.

    Raises:
        MmcvCompatError: a real mmcv is importable or already imported (the message names its version
            and location): uninstall it, or keep using it without this layer.
    """
    with _LOCK:
        if _FINDER in sys.meta_path:
            return
        _refuse_real_mmcv()
        sys.meta_path.insert(0, _FINDER)


def _adopt() -> None:
    """Install the layer without checks and put its ``mmcv`` in ``sys.modules`` in place of the shim importing it.

    For the ``mmcv/__init__.py`` that :mod:`fsm_trainer.mmcv.run` writes on ``sys.path``: a worker process
    started with the ``spawn`` or ``forkserver`` method (DataLoader workers on macOS, or on Linux from
    Python 3.14) gets the parent's ``sys.path`` but not its finder, and re-imports the script; its
    ``import mmcv`` loads the shim, which calls this. The import then returns the served ``mmcv``.
    """
    with _LOCK:
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
    spec = _FINDER.find_spec("mmcv", None)
    assert spec is not None
    top = importlib.util.module_from_spec(spec)
    _FINDER.exec_module(top)
    sys.modules["mmcv"] = top


def uninstall() -> None:
    """Undo :func:`install`: remove the finder and every served ``mmcv`` module from :data:`sys.modules`.

    Objects already imported from them (``EpochBasedRunner``...) stay usable; a later ``import mmcv``
    finds whatever mmcv is installed, or fails. A no-op when not installed.
    """
    with _LOCK:
        while _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
        for key, module in list(sys.modules.items()):
            if _is_mmcv_name(key) and isinstance(module, _ServedModule):
                del sys.modules[key]
