"""The names OpenMMLab 1.x training scripts import from ``mmcv.utils`` (and top-level ``mmcv``).

Change ``from mmcv import Config, DictAction`` to ``from fsm_trainer.mmcv.utils import Config, DictAction``.

* :class:`Config`, :class:`ConfigDict`: mmcv's config object over :func:`fsm_trainer.config.loader.load_config`
  (Python, JSON, YAML and TOML files, ``_base_`` inheritance, ``_delete_``, ``{{ fileDirname }}``,
  ``{{ _base_.x }}``), with attribute access, ``merge_from_dict`` (``--cfg-options``), ``pretty_text`` and ``dump``.
* :class:`DictAction`: the argparse action of ``--cfg-options key=value ...``, parsing values as mmcv 1.7.2 does.
* :func:`get_logger`, :func:`print_log`: mmcv's logger set-up (a logger initialised once per name; on ranks
  other than 0 only errors are shown).
* Small helpers: :func:`mkdir_or_exist`, :func:`check_file_exist`, :func:`is_filepath`, :func:`is_str`,
  :func:`is_seq_of`, :func:`is_list_of`, :func:`is_tuple_of`, :func:`is_method_overridden`,
  :func:`has_method`, :func:`digit_version`, :data:`TORCH_VERSION`, :func:`collect_env`,
  :func:`get_git_hash`, :func:`import_modules_from_strings`; :class:`Registry` and
  :func:`build_from_cfg` from :mod:`fsm_trainer.mmcv.registry`.

>>> cfg = Config(dict(model=dict(type="ResNet", depth=50), gpu_ids=[0]))
>>> cfg.model.depth
50
>>> cfg.merge_from_dict({"model.depth": 101, "optimizer.lr": 0.1})
>>> cfg.model.depth, cfg.optimizer.lr
(101, 0.1)
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import json
import keyword
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import types
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fsm_trainer.config import loader as _loader
from fsm_trainer.config.loader import ConfigError
from fsm_trainer.config.loader import parse_value as parse_option_value
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.registry import Registry as Registry
from fsm_trainer.mmcv.registry import build_from_cfg as build_from_cfg


class MmcvTypeError(FsmTrainerError, TypeError):
    """An argument of a type the mmcv API does not take; the message names it and what is allowed."""


class MmcvValueError(FsmTrainerError, ValueError):
    """An argument value the mmcv API does not take; the message names it and what is allowed."""


class CustomImportError(FsmTrainerError, ImportError):
    """A module named in a config's ``custom_imports`` could not be imported."""


class MissingFileError(FsmTrainerError, FileNotFoundError):
    """:func:`check_file_exist` found no such file."""


TORCH_VERSION: str = torch.__version__
"""The PyTorch version string (mmcv's ``TORCH_VERSION``; compare with :func:`digit_version`)."""


RESERVED_KEYS = ("filename", "text", "pretty_text")
"""Top-level config keys :class:`Config` refuses: they name its own properties (as mmcv)."""

DEPRECATION_KEY = "_deprecation_"


# --------------------------------------------------------------------------- ConfigDict


def _wrap(value: Any, fresh: bool) -> Any:
    """``value`` with its dicts (also inside plain lists and tuples) as :class:`ConfigDict`.

    ``fresh``: copy every dict, list and tuple (as building a ``ConfigDict`` does in mmcv);
    otherwise a ``ConfigDict`` is kept as it is and containers are copied only where a dict changes.
    """
    if isinstance(value, dict):
        return value if isinstance(value, ConfigDict) and not fresh else ConfigDict(value)
    if type(value) in (list, tuple):
        items = [_wrap(v, fresh) for v in value]
        if not fresh and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    return value


def _unwrap(value: Any) -> Any:
    """``value`` with every :class:`ConfigDict` (also inside plain lists and tuples) as a plain dict."""
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_unwrap(v) for v in value)
    return value


class ConfigDict(dict[str, Any]):
    """mmcv's ``ConfigDict``: a dict whose keys are also attributes.

    Nested dicts, also inside lists and tuples, become :class:`ConfigDict` when stored. A
    missing key read as an attribute raises :class:`AttributeError` (so ``hasattr`` and
    ``getattr(d, k, default)`` work), read as an item :class:`KeyError`. Keys named like a
    dict method (``items``, ``get``, ``copy``...) are reached as items only. ``update``
    merges nested dicts key by key, as mmcv's.

    >>> d = ConfigDict(model=dict(type="ResNet", norm_cfg=dict(type="BN")))
    >>> d.model.norm_cfg.type
    'BN'
    >>> d.model.depth = 50
    >>> d.model
    {'type': 'ResNet', 'norm_cfg': {'type': 'BN'}, 'depth': 50}
    >>> hasattr(d, "optimizer")
    False
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            super().__setitem__(key, _wrap(value, fresh=True))

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _wrap(value, fresh=False))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            msg = f"'{type(self).__name__}' object has no attribute '{name}'"
            raise AttributeError(msg) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(type(self), name):
            msg = f"'{type(self).__name__}' object attribute '{name}' is read-only (a dict method); set it as an item"
            raise AttributeError(msg)
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            msg = f"'{type(self).__name__}' object has no attribute '{name}'"
            raise AttributeError(msg) from None

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Merge another mapping in: a dict value merges into a dict value key by key, anything else replaces."""
        for key, value in dict(*args, **kwargs).items():
            mine = self.get(key)
            if isinstance(mine, dict) and isinstance(value, dict):
                mine.update(value)
            else:
                self[key] = value

    def copy(self) -> ConfigDict:
        """A shallow copy (a :class:`ConfigDict`)."""
        other = type(self)()
        dict.update(other, self)
        return other

    def deepcopy(self) -> ConfigDict:
        """A deep copy (a :class:`ConfigDict`)."""
        return copy.deepcopy(self)

    def __copy__(self) -> ConfigDict:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> ConfigDict:
        other = type(self)()
        memo[id(self)] = other
        for key, value in self.items():
            other[copy.deepcopy(key, memo)] = copy.deepcopy(value, memo)
        return other

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` copy, nested ``ConfigDict`` included."""
        return _unwrap(dict(self))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- pretty text


_INLINE_WIDTH = 100


def _is_name(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _scalar_text(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"float('{value}')"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}" if value.__module__ != "builtins" else value.__qualname__
    return repr(value)


def _entries(value: Any) -> tuple[str, str, list[tuple[str, Any]]] | None:
    """``(open, close, [(prefix, item)])`` of a container written item by item, else ``None``."""
    if isinstance(value, dict):
        if all(_is_name(k) for k in value):
            return "dict(", ")", [(f"{k}=", v) for k, v in value.items()]
        return "{", "}", [(f"{_scalar_text(k)}: ", v) for k, v in value.items()]
    if type(value) is list:
        return "[", "]", [("", v) for v in value]
    if type(value) is tuple:
        return "(", ")", [("", v) for v in value]
    return None


def _inline(value: Any) -> str:
    parts = _entries(value)
    if parts is None:
        return _scalar_text(value)
    opening, closing, items = parts
    body = ", ".join(prefix + _inline(v) for prefix, v in items)
    if type(value) is tuple and len(items) == 1:
        body += ","
    return opening + body + closing


def _format(value: Any, indent: int, lead: int) -> str:
    """``value`` as Python source; ``lead`` characters precede it on its first line."""
    one_line = _inline(value)
    parts = _entries(value)
    if parts is None or not parts[2] or lead + len(one_line) <= _INLINE_WIDTH:
        return one_line
    opening, closing, items = parts
    pad = " " * (indent + 4)
    lines = [opening]
    for prefix, v in items:
        lines.append(f"{pad}{prefix}{_format(v, indent + 4, indent + 4 + len(prefix))},")
    lines.append(" " * indent + closing)
    return "\n".join(lines)


def format_python(cfg: Mapping[str, Any]) -> str:
    """``cfg`` as the text of a Python config file (one assignment per top-level key).

    Values print as ``dict(...)`` (``{...}`` where a key is not a Python name), lists and
    tuples; a value longer than the line is written one item per line. Top-level keys that
    are not Python names are assigned through ``globals()``. Objects without a literal form
    (classes, functions) print as their name or ``repr`` and do not load back.

    >>> print(format_python({"model": {"type": "ResNet", "depth": 50}, "img_scale": (1333, 800)}))
    model = dict(type='ResNet', depth=50)
    img_scale = (1333, 800)
    <BLANKLINE>
    """
    lines = []
    for key, value in cfg.items():
        target = key if _is_name(key) else f"globals()[{key!r}]"
        lines.append(f"{target} = {_format(_unwrap(value), 0, len(target) + 3)}")
    return "\n".join(lines) + "\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, range)):
        return list(obj)
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars
    if callable(tolist) and type(obj).__module__.startswith("numpy"):
        return tolist()
    msg = f"a config value of type {type(obj).__name__} ({obj!r:.60}) cannot be written as JSON"
    raise ConfigError(msg)


def _plain_data(obj: Any) -> Any:
    """``obj`` with tuples, sets and ranges as lists, numpy values as Python ones (for YAML)."""
    if isinstance(obj, dict):
        return {k: _plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset, range)):
        return [_plain_data(v) for v in obj]
    if type(obj).__module__.startswith("numpy") and callable(getattr(obj, "tolist", None)):
        return obj.tolist()
    return obj


def _dump_text(cfg: dict[str, Any], file_format: str) -> str:
    if file_format == "json":
        return json.dumps(cfg, indent=4, default=_json_default)
    if file_format in ("yaml", "yml"):
        try:
            import yaml
        except ImportError:
            msg = "writing a YAML config needs PyYAML: pip install pyyaml"
            raise ConfigError(msg) from None
        try:
            return yaml.safe_dump(_plain_data(cfg), sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as exc:
            msg = f"the config cannot be written as YAML: {exc}"
            raise ConfigError(msg) from None
    msg = f"cannot write a config as {file_format!r}; allowed: py, json, yaml, yml"
    raise ConfigError(msg)


# --------------------------------------------------------------------------- custom imports


def import_modules_from_strings(imports: str | list[str] | None,
                                allow_failed_imports: bool = False) -> Any:
    """Import the modules named in ``imports`` (mmcv's, as a config's ``custom_imports`` is honoured).

    Returns:
        The module (``imports`` a string), the list of modules (``None`` for those that failed
        when ``allow_failed_imports``), or ``None`` when ``imports`` is empty.

    Raises:
        MmcvTypeError: ``imports`` is not a string or a list of strings.
        CustomImportError: a module cannot be imported and ``allow_failed_imports`` is false.

    >>> import_modules_from_strings(["os.path", "json"])[1].__name__
    'json'
    """
    if not imports:
        return None
    single = isinstance(imports, str)
    names: Any = [imports] if single else imports
    if not isinstance(names, list):
        msg = f"custom_imports imports={names!r}: must be a module name or a list of them, got {type(names).__name__}"
        raise MmcvTypeError(msg)
    out: list[types.ModuleType | None] = []
    for name in names:
        if not isinstance(name, str):
            msg = f"custom_imports imports: {name!r} is a {type(name).__name__}; give module names as strings"
            raise MmcvTypeError(msg)
        try:
            out.append(importlib.import_module(name))
        except ImportError as exc:
            if not allow_failed_imports:
                msg = (f"custom_imports: cannot import {name!r}: {exc}; fix the name or set "
                       "allow_failed_imports=True to skip it")
                raise CustomImportError(msg, name=name) from exc
            warnings.warn(f"{name} failed to import and is ignored.", UserWarning, stacklevel=2)
            out.append(None)
    return out[0] if single else out


def _custom_imports(value: Any) -> None:
    if not isinstance(value, Mapping):
        msg = (f"custom_imports={value!r}: must be a dict such as "
               "dict(imports=['my_pkg.models'], allow_failed_imports=False)")
        raise MmcvTypeError(msg)
    unknown = sorted(set(value) - {"imports", "allow_failed_imports"})
    if unknown:
        msg = f"custom_imports: unknown keys {unknown}; allowed: imports, allow_failed_imports"
        raise ConfigError(msg)
    import_modules_from_strings(value.get("imports"), bool(value.get("allow_failed_imports", False)))


# --------------------------------------------------------------------------- Config


_SUBSTITUTE_LOCK = threading.Lock()


def _load(path: str, use_predefined_variables: bool) -> dict[str, Any]:
    if use_predefined_variables:
        return _loader.load_config(path)
    # As mmcv: the file itself keeps its {{ fileDirname }}... text; its _base_ files are substituted.
    top = Path(path).expanduser().resolve()
    original = _loader._substitute_predefined

    def substitute(text: str, p: Path) -> str:
        return text if p == top else original(text, p)

    with _SUBSTITUTE_LOCK:
        setattr(_loader, "_substitute_predefined", substitute)  # noqa: B010
        try:
            return _loader.load_config(path)
        finally:
            setattr(_loader, "_substitute_predefined", original)  # noqa: B010


def _base_names(text: str, path: Path) -> list[str]:
    """The ``_base_`` files a config file names (for :attr:`Config.text`); none when not a literal."""
    value: Any = None
    try:
        if path.suffix == ".py":
            for node in ast.parse(text).body:
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == _loader.BASE_KEY
                                                        for t in node.targets):
                    value = ast.literal_eval(node.value)
        else:
            data = _loader._parse(text, path)
            value = data.get(_loader.BASE_KEY) if isinstance(data, dict) else None
    except (SyntaxError, ValueError, TypeError):
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _config_text(path: str, seen: tuple[str, ...] = ()) -> str:
    """mmcv's ``Config.text``: each base file's text, then the file's own, each after its absolute path."""
    absolute = os.path.abspath(os.path.expanduser(path))
    if absolute in seen:
        return ""
    text = _loader.read_text(Path(absolute))
    bases = _base_names(text, Path(absolute))
    parts = [_config_text(os.path.join(os.path.dirname(absolute), b), (*seen, absolute)) for b in bases]
    return "\n".join([*parts, f"{absolute}\n{text}"])


class Config:
    """mmcv's ``Config``: a config dict with attribute access, read from a file by :meth:`fromfile`.

    Args:
        cfg_dict: the config (copied into a :class:`ConfigDict`); an empty one by default.
        cfg_text: the text :attr:`text` returns (by default the file's, or ``''``).
        filename: the file the config was read from.

    Items are read as attributes (``cfg.model.type``) or items (``cfg['optimizer']``), set
    the same way (``cfg.work_dir = 'out'``); ``get``, ``keys``, ``items``, ``pop``,
    ``update``... are those of the underlying :class:`ConfigDict` (so, as in mmcv,
    ``cfg.copy()`` is a ``ConfigDict``; ``copy.deepcopy(cfg)`` is a ``Config``). ``len``,
    ``in`` and iteration behave as for a dict. As in mmcv, the config holds copies of the
    dicts it is given (at construction, and a dict set as a top-level value).

    Raises:
        MmcvTypeError: ``cfg_dict`` is not a dict.
        ConfigError: a top-level key is one of :data:`RESERVED_KEYS`; ``filename`` cannot be read.

    >>> cfg = Config({"optimizer": {"type": "SGD", "lr": 0.02}})
    >>> cfg.optimizer.lr, cfg["optimizer"]["type"], cfg.get("runner", "none"), "optimizer" in cfg
    (0.02, 'SGD', 'none', True)
    >>> cfg.gpu_ids = range(1)
    >>> sorted(cfg)
    ['gpu_ids', 'optimizer']
    """

    _cfg_dict: ConfigDict
    _filename: str | None
    _text: str

    def __init__(self, cfg_dict: Mapping[str, Any] | None = None, cfg_text: str | None = None,
                 filename: str | Path | None = None) -> None:
        if cfg_dict is None:
            cfg_dict = {}
        elif not isinstance(cfg_dict, dict):
            msg = f"cfg_dict must be a dict, got {type(cfg_dict).__name__}"
            raise MmcvTypeError(msg)
        for key in cfg_dict:
            self._check_settable(key)
        name = str(filename) if filename is not None else None
        if cfg_text:
            text = cfg_text
        elif name:
            text = _loader.read_text(Path(name))
        else:
            text = ""
        object.__setattr__(self, "_cfg_dict", ConfigDict(cfg_dict))
        object.__setattr__(self, "_filename", name)
        object.__setattr__(self, "_text", text)

    # ------------------------------------------------------------------ reading

    @staticmethod
    def fromfile(filename: str | Path, use_predefined_variables: bool = True,
                 import_custom_modules: bool = True) -> Config:
        """Read a Python, JSON, YAML or TOML config file with its ``_base_`` files.

        Args:
            filename: the config file.
            use_predefined_variables: substitute ``{{ fileDirname }}``, ``{{ fileBasename }}``,
                ``{{ fileBasenameNoExtension }}`` and ``{{ fileExtname }}`` in the file (its
                ``_base_`` files are always substituted, as in mmcv).
            import_custom_modules: import the modules named in the config's
                ``custom_imports=dict(imports=[...], allow_failed_imports=False)``.

        Raises:
            ConfigError: the file or one of its bases is missing or invalid (the loader's error).
            CustomImportError: a module of ``custom_imports`` cannot be imported.
        """
        name = str(filename)
        cfg_dict = _load(name, use_predefined_variables)
        deprecation = cfg_dict.pop(DEPRECATION_KEY, None)
        if isinstance(deprecation, Mapping):
            text = f"The config file {name} will be deprecated in the future."
            if "expected" in deprecation:
                text += f" Please use {deprecation['expected']} instead."
            if "reference" in deprecation:
                text += f" More information can be found at {deprecation['reference']}"
            warnings.warn(text, DeprecationWarning, stacklevel=2)
        if import_custom_modules and cfg_dict.get("custom_imports"):
            _custom_imports(cfg_dict["custom_imports"])
        return Config(cfg_dict, cfg_text=_config_text(name), filename=name)

    @staticmethod
    def fromstring(cfg_str: str, file_format: str) -> Config:
        """A config from the text of a file of format ``file_format`` (``'.py'``, ``'.json'``, ``'.yaml'``...).

        Raises:
            ConfigError: an unknown format, or a text that does not parse.
        """
        if file_format not in _loader.SUFFIXES:
            msg = f"file_format={file_format!r}; allowed: {', '.join(_loader.SUFFIXES)}"
            raise ConfigError(msg)
        if file_format != ".py" and "dict(" in cfg_str:
            warnings.warn('Please check "file_format", the file format may be .py', UserWarning, stacklevel=2)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=file_format, delete=False) as f:
            f.write(cfg_str)
        try:
            return Config.fromfile(f.name)
        finally:
            os.remove(f.name)

    # ------------------------------------------------------------------ properties

    @property
    def filename(self) -> str | None:
        """The file the config was read from (as given), or ``None``."""
        return self._filename

    @property
    def text(self) -> str:
        """The text of the file and of its bases (each after its absolute path), as mmcv's."""
        return self._text

    @property
    def pretty_text(self) -> str:
        """The config as the text of a Python config file (:func:`format_python`)."""
        return format_python(self._cfg_dict)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain nested dicts."""
        return self._cfg_dict.to_dict()

    # ------------------------------------------------------------------ changing

    def merge_from_dict(self, options: Mapping[str, Any], allow_list_keys: bool = True) -> None:
        """Merge dotted ``options`` in (as ``--cfg-options``, e.g. from :class:`DictAction`).

        ``{'model.backbone.depth': 50}`` sets one key; a dict value merges into the dict it
        names (``_delete_=True`` in it replaces that dict). With ``allow_list_keys``, a
        digit key indexes a list: ``{'data.train.pipeline.1.flip_ratio': 0.0}``.

        Raises:
            ConfigError: a key goes through a value that is not a dict (or, with
                ``allow_list_keys``, a list), or indexes past the end of a list.
        """
        nested: dict[str, Any] = {}
        for full_key, value in options.items():
            node = nested
            *parents, last = str(full_key).split(".")
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    msg = f"option {full_key!r}: {part!r} is set both as a value and as a parent key"
                    raise ConfigError(msg)
            node[last] = _unwrap(value) if isinstance(value, dict) else value
        merged = _loader.merge(self._cfg_dict, nested, allow_list_keys=allow_list_keys, source="merge_from_dict")
        object.__setattr__(self, "_cfg_dict", ConfigDict(merged))

    def dump(self, file: str | Path | None = None) -> str | None:
        """Write the config to ``file`` (Python, JSON or YAML by its suffix) or return its text.

        Without ``file`` the format is that of :attr:`filename` (Python when there is none).
        JSON and YAML write tuples, sets and ranges as lists.

        Raises:
            ConfigError: an unsupported suffix, or a value the format cannot hold.
        """
        if file is None:
            if self.filename is None or self.filename.endswith(".py"):
                return self.pretty_text
            return _dump_text(self.to_dict(), self.filename.rsplit(".", 1)[-1])
        target = Path(file)
        fmt = target.suffix.lstrip(".")
        text = self.pretty_text if fmt == "py" else _dump_text(self.to_dict(), fmt)
        target.write_text(text, encoding="utf-8")
        return None

    # ------------------------------------------------------------------ dict behaviour

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_cfg_dict", "_filename", "_text"):
            raise AttributeError(name)
        return getattr(self._cfg_dict, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._check_settable(name)
        setattr(self._cfg_dict, name, ConfigDict(value) if isinstance(value, dict) else value)

    def __delattr__(self, name: str) -> None:
        delattr(self._cfg_dict, name)

    def __getitem__(self, name: str) -> Any:
        return self._cfg_dict[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._check_settable(name)
        self._cfg_dict[name] = ConfigDict(value) if isinstance(value, dict) else value

    def __delitem__(self, name: str) -> None:
        del self._cfg_dict[name]

    def __contains__(self, name: object) -> bool:
        return name in self._cfg_dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._cfg_dict)

    def __len__(self) -> int:
        return len(self._cfg_dict)

    def __repr__(self) -> str:
        return f"Config (path: {self.filename}): {self._cfg_dict!r}"

    @staticmethod
    def _check_settable(name: str) -> None:
        if name in RESERVED_KEYS:
            msg = f"config key {name!r} is reserved (it names a Config property); reserved: {', '.join(RESERVED_KEYS)}"
            raise ConfigError(msg)


# --------------------------------------------------------------------------- DictAction


class DictAction(argparse.Action):
    """mmcv's argparse action for ``--cfg-options KEY=VALUE ...``: a dict of parsed values.

    Use it with ``nargs='+'``. Each argument is split at its first ``=``; the value is read
    by :func:`parse_option_value` (``lr=0.01``, ``steps=[8,11]``, ``betas=(0.9,0.999)``,
    ``flip=False``). Give the result to :meth:`Config.merge_from_dict`.

    Raises:
        ConfigError: an argument without ``=`` or with an empty key, or unbalanced brackets.

    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    >>> parser.parse_args(["--cfg-options", "model.depth=101", "lr_config.step=[8,11]"]).cfg_options
    {'model.depth': 101, 'lr_config.step': [8, 11]}
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        items = [values] if isinstance(values, str) else list(values or [])
        options: dict[str, Any] = {}
        for kv in items:
            key, sep, value = str(kv).partition("=")
            if not sep or not key:
                msg = (f"{option_string or self.dest} {kv!r}: expected KEY=VALUE, "
                       "e.g. model.backbone.depth=50 or lr_config.step=[8,11]")
                raise ConfigError(msg)
            options[key] = parse_option_value(value, key)
        setattr(namespace, self.dest, options)


# --------------------------------------------------------------------------- logging


logger_initialized: dict[str, bool] = {}
"""The names :func:`get_logger` has initialised."""


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_logger(name: str, log_file: str | Path | None = None, log_level: int = logging.INFO,
               file_mode: str = "w") -> logging.Logger:
    """The logger ``name``, given its handlers the first time (mmcv's ``get_logger``).

    The first call for a name adds a stream handler (stderr) and, on rank 0 with
    ``log_file``, a file handler opened with ``file_mode``, both at ``log_level`` with mmcv's
    format ``'%(asctime)s - %(name)s - %(levelname)s - %(message)s'``; the logger's level is
    ``log_level`` on rank 0 and ``ERROR`` on the other ranks. Plain stream handlers of the
    root logger are set to ``ERROR`` (so that messages are not printed twice). Later calls,
    and calls for a child (``'name.sub'``) of an initialised logger, return the logger as it
    is (mmcv also skips any name that merely starts with an initialised one).
    """
    logger = logging.getLogger(name)
    if name in logger_initialized or any(name.startswith(f"{done}.") for done in logger_initialized):
        return logger
    for handler in logging.root.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.ERROR)
    rank = _rank()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if rank == 0 and log_file is not None:
        handlers.append(logging.FileHandler(log_file, file_mode, encoding="utf-8"))
    formatter = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.setLevel(log_level)
        logger.addHandler(handler)
    logger.setLevel(log_level if rank == 0 else logging.ERROR)
    logger_initialized[name] = True
    return logger


def print_log(msg: Any, logger: logging.Logger | str | None = None, level: int = logging.INFO) -> None:
    """Print ``msg`` (``logger=None``), drop it (``'silent'``), or log it at ``level`` to a logger or a name.

    Raises:
        MmcvTypeError: ``logger`` is of another type.
    """
    if logger is None:
        print(msg)
    elif isinstance(logger, logging.Logger):
        logger.log(level, msg)
    elif logger == "silent":
        pass
    elif isinstance(logger, str):
        get_logger(logger).log(level, msg)
    else:
        text = f'logger must be a logging.Logger, a logger name, "silent" or None, got {type(logger).__name__}'
        raise MmcvTypeError(text)


# --------------------------------------------------------------------------- small helpers


def mkdir_or_exist(dir_name: str | Path, mode: int = 0o777) -> None:
    """Create ``dir_name`` and its parents unless it exists (``''`` is the current directory: nothing to do)."""
    if dir_name == "":
        return
    os.makedirs(os.path.expanduser(dir_name), mode=mode, exist_ok=True)


def is_filepath(x: Any) -> bool:
    """Whether ``x`` is a path: a string or a :class:`pathlib.Path`."""
    return isinstance(x, (str, Path))


def check_file_exist(filename: str | Path, msg_tmpl: str = 'file "{}" does not exist') -> None:
    """Raise :class:`MissingFileError` (a ``FileNotFoundError``) unless ``filename`` is a file."""
    if not os.path.isfile(filename):
        raise MissingFileError(msg_tmpl.format(filename))


def is_method_overridden(method: str, base_class: type, derived_class: Any) -> bool:
    """Whether the class (or the class of the instance) ``derived_class`` overrides ``base_class.method``.

    >>> class A:
    ...     def f(self): ...
    >>> class B(A):
    ...     def f(self): ...
    >>> is_method_overridden("f", A, B), is_method_overridden("f", A, A())
    (True, False)

    Raises:
        MmcvTypeError: ``base_class`` is not a class.
    """
    if not isinstance(base_class, type):
        msg = f"base_class must be a class, got an instance of {type(base_class).__name__}"
        raise MmcvTypeError(msg)
    derived = derived_class if isinstance(derived_class, type) else type(derived_class)
    return getattr(derived, method) is not getattr(base_class, method)


def has_method(obj: object, method: str) -> bool:
    """Whether ``obj`` has a callable attribute ``method``."""
    return callable(getattr(obj, method, None))


def is_str(x: Any) -> bool:
    """Whether ``x`` is a string."""
    return isinstance(x, str)


def is_seq_of(seq: Any, expected_type: type | tuple[type, ...], seq_type: type | None = None) -> bool:
    """Whether ``seq`` is a ``seq_type`` (any sequence by default) whose items are all ``expected_type``.

    >>> is_seq_of([1, 2], int), is_seq_of((1, "a"), int), is_seq_of("ab", str), is_seq_of({1}, int)
    (True, False, True, False)

    Raises:
        MmcvTypeError: ``seq_type`` is not a type.
    """
    if seq_type is not None and not isinstance(seq_type, type):
        msg = f"seq_type must be a type such as list or tuple, got {seq_type!r}"
        raise MmcvTypeError(msg)
    if not isinstance(seq, Sequence if seq_type is None else seq_type):
        return False
    items: Any = seq
    return all(isinstance(item, expected_type) for item in items)


def is_list_of(seq: Any, expected_type: type | tuple[type, ...]) -> bool:
    """Whether ``seq`` is a list whose items are all ``expected_type``."""
    return is_seq_of(seq, expected_type, list)


def is_tuple_of(seq: Any, expected_type: type | tuple[type, ...]) -> bool:
    """Whether ``seq`` is a tuple whose items are all ``expected_type``."""
    return is_seq_of(seq, expected_type, tuple)


def digit_version(version_str: str, length: int = 4) -> tuple[int, ...]:
    """A version as a tuple of ints that compares as the versions do (mmcv's).

    The release padded or cut to ``length`` numbers, then two more: ``(-3|-2|-1, n)`` for
    ``an``/``bn``/``rcn`` pre-releases, ``(-4, 0)`` for a development release, ``(1, n)`` for
    ``.postn``, else ``(0, 0)``. A local part (``+cu118``) is ignored.

    >>> digit_version("1.7.2"), digit_version("2.1.0rc1") < digit_version("2.1.0")
    ((1, 7, 2, 0, 0, 0), True)

    Raises:
        MmcvValueError: not a version string (PEP 440).
    """
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(version_str)
    except (InvalidVersion, TypeError):
        msg = f"version_str={version_str!r} is not a version number such as '1.7.2' or '2.1.0rc1'"
        raise MmcvValueError(msg) from None
    release = list(version.release[:length])
    release += [0] * (length - len(release))
    if version.pre is not None:
        release += [{"a": -3, "b": -2, "rc": -1}[version.pre[0]], version.pre[1]]
    elif version.is_prerelease:  # a development release
        release += [-4, 0]
    elif version.post is not None:
        release += [1, version.post]
    else:
        release += [0, 0]
    return tuple(release)


def _package_version(dist_name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return None


def collect_env() -> dict[str, Any]:
    """Facts about the environment, as mmcv's ``collect_env`` (without compiler probing).

    Keys: ``sys.platform``, ``Python``, ``CUDA available``, one ``GPU i,j`` per GPU model
    (with CUDA), ``CUDA_HOME`` (when set), ``PyTorch``, ``PyTorch compiling details``,
    ``TorchVision`` and ``OpenCV`` (when installed), ``fsm_trainer``.
    """
    import fsm_trainer

    env: dict[str, Any] = {"sys.platform": sys.platform, "Python": sys.version.replace("\n", "")}
    cuda = torch.cuda.is_available()
    env["CUDA available"] = cuda
    if cuda:
        devices: dict[str, list[str]] = defaultdict(list)
        for i in range(torch.cuda.device_count()):
            devices[torch.cuda.get_device_name(i)].append(str(i))
        for device_name, ids in devices.items():
            env["GPU " + ",".join(ids)] = device_name
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home:
        env["CUDA_HOME"] = cuda_home
    env["PyTorch"] = torch.__version__
    env["PyTorch compiling details"] = torch.__config__.show()
    for key, dist_name in (("TorchVision", "torchvision"), ("OpenCV", "opencv-python")):
        found = _package_version(dist_name)
        if found is not None:
            env[key] = found
    env["fsm_trainer"] = fsm_trainer.__version__
    return env


def get_git_hash(fallback: str = "unknown", digits: int | None = None) -> str:
    """The commit hash of the git repository of the current directory, or ``fallback``.

    ``digits``: keep that many leading characters. ``fallback`` is returned whenever git is
    missing or the directory is not in a repository.

    Raises:
        MmcvTypeError: ``digits`` is neither ``None`` nor an int.
    """
    if digits is not None and (not isinstance(digits, int) or isinstance(digits, bool)):
        msg = f"digits must be None or an int, got {digits!r}"
        raise MmcvTypeError(msg)
    env = {k: v for k in ("SYSTEMROOT", "PATH", "HOME") if (v := os.environ.get(k)) is not None}
    env.update(LANGUAGE="C", LANG="C", LC_ALL="C")
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, env=env, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return fallback
    sha = done.stdout.strip().decode("ascii", "replace")
    if done.returncode != 0 or not sha:
        return fallback
    return sha[:digits] if digits is not None else sha


__all__ = [
    "RESERVED_KEYS", "TORCH_VERSION", "Config", "ConfigDict", "ConfigError", "CustomImportError", "DictAction",
    "MissingFileError", "MmcvTypeError", "MmcvValueError", "Registry", "build_from_cfg", "check_file_exist",
    "collect_env", "digit_version", "format_python", "get_git_hash", "get_logger", "has_method",
    "import_modules_from_strings", "is_filepath", "is_list_of", "is_method_overridden", "is_seq_of", "is_str",
    "is_tuple_of", "logger_initialized", "mkdir_or_exist", "parse_option_value", "print_log",
]
