"""Reading config files: Python (mmcv style), YAML, TOML and JSON, with ``_base_`` inheritance.

What mmcv 1.7.2's ``Config.fromfile`` does, as plain functions over plain dicts:

* A Python config is executed and its top-level names are the config, except names starting
  with ``__``, modules and functions (classes are kept, so ``type=MyNet`` works).
* ``_base_ = 'base.py'`` or a list of files (relative to the config), of any supported format:
  the bases are merged first (a key defined by two bases is an error), then the file's own
  keys are merged into them; a dict merges key by key, anything else replaces.
* ``_delete_=True`` inside a dict replaces the base's dict instead of merging into it.
* ``{{ _base_.a.b }}`` in a file is the value of ``a.b`` in its bases; ``{{ fileDirname }}``,
  ``{{ fileBasename }}``, ``{{ fileBasenameNoExtension }}``, ``{{ fileExtname }}`` are
  substituted in the text before it is read.
* ``--cfg-options a.b=1 c=[1,2] d.0.e=x`` overrides keys (:func:`parse_options`, parsed
  as mmcv's ``DictAction``); a digit key indexes a list.

>>> merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}})
{'a': {'b': 3, 'c': 2}}
>>> merge({"a": {"b": 1, "c": 2}}, {"a": {"_delete_": True, "b": 3}})
{'a': {'b': 3}}
>>> apply_options({"lr_config": {"step": [8, 11]}}, parse_options(["lr_config.step=[4,6]", "seed=1"]))
{'lr_config': {'step': [4, 6]}, 'seed': 1}
"""

from __future__ import annotations

import copy
import json
import re
import sys
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn, cast

from fsm_trainer.errors import FsmTrainerError

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
SUFFIXES = (".py", ".yaml", ".yml", ".toml", ".json")


class ConfigError(FsmTrainerError, ValueError):
    """A config is invalid. ``errors`` lists every problem found, each naming its key path."""

    def __init__(self, errors: str | Iterable[str], source: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(dict.fromkeys(errors))
        self.source = source
        head = f"invalid config {source}" if source else "invalid config"
        n = len(self.errors)
        lines = [f"{head}: {n} error{'s' if n != 1 else ''}", *(f"  {e}" for e in self.errors)]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- files


def _substitute_predefined(text: str, path: Path) -> str:
    values = {
        "fileDirname": str(path.parent).replace("\\", "/"),
        "fileBasename": path.name,
        "fileBasenameNoExtension": path.stem,
        "fileExtname": path.suffix,
    }
    for key, value in values.items():
        text = re.sub(r"\{\{\s*" + key + r"\s*\}\}", lambda _, v=value: v, text)  # type: ignore[misc]
    return text


def _placeholders(text: str) -> tuple[str, dict[str, str]]:
    """Replace ``{{ _base_.x.y }}`` by unique quoted strings; return the text and their meaning."""
    found: dict[str, str] = {}

    def repl(m: re.Match[str]) -> str:
        key = f"_fsm_base_{m.group(1)}_{uuid.uuid4().hex[:8]}"
        found[key] = m.group(1)
        return f'"{key}"'

    return re.sub(r"\{\{\s*" + BASE_KEY + r"\.([\w.]+)\s*\}\}", repl, text), found


def _resolve_placeholders(obj: Any, names: Mapping[str, str], base: Mapping[str, Any], path: Path) -> Any:
    if isinstance(obj, str) and obj in names:
        value: Any = base
        for part in names[obj].split("."):
            if not isinstance(value, Mapping) or part not in value:
                msg = f"{path}: {{{{ _base_.{names[obj]} }}}} names a key its bases do not define"
                raise ConfigError(msg)
            value = value[part]
        return copy.deepcopy(value)
    if isinstance(obj, dict):
        return {k: _resolve_placeholders(v, names, base, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve_placeholders(v, names, base, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve_placeholders(v, names, base, path) for v in obj)
    return obj


def _exec_python(text: str, path: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": f"fsm_trainer_config_{path.stem}"}
    try:
        code = compile(text, str(path), "exec")
    except SyntaxError as exc:
        msg = f"{path}:{exc.lineno}: syntax error: {exc.msg}"
        raise ConfigError(msg) from exc
    try:
        exec(code, namespace)
    except SystemExit as exc:
        msg = f"{path}: running the config called exit({exc.code!r}); a config file must only define names"
        raise ConfigError(msg) from exc
    except Exception as exc:
        msg = f"{path}: running the config raised {type(exc).__name__}: {exc}"
        raise ConfigError(msg) from exc
    return {
        k: v for k, v in namespace.items()
        if not k.startswith("__") and not isinstance(v, (types.ModuleType, types.FunctionType))
    }


def _parse(text: str, path: Path) -> Any:
    suffix = path.suffix
    if suffix == ".py":
        return _exec_python(text, path)
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                msg = f"{path}: YAML configs need PyYAML: pip install pyyaml"
                raise ConfigError(msg) from None
            return yaml.safe_load(text)
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:
                try:
                    import tomli as tomllib
                except ImportError:
                    msg = f"{path}: TOML configs on Python 3.10 need tomli: pip install tomli"
                    raise ConfigError(msg) from None
            return tomllib.loads(text)
        return json.loads(text)
    except ConfigError:
        raise
    except Exception as exc:
        msg = f"{path}: cannot parse {suffix[1:].upper()}: {exc}"
        raise ConfigError(msg) from exc


def read_text(path: Path) -> str:
    """The text of the config file ``path``, which must be UTF-8.

    Raises:
        ConfigError: naming the file and the first byte that is not UTF-8, or why it cannot be read
            (the ``OSError`` or ``UnicodeDecodeError`` is its ``__cause__``).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read the config file: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    try:
        return raw.decode("utf-8-sig")  # a UTF-8 byte order mark is allowed, and dropped
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        msg = (f"{path}:{line}: the file is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
               "save it as UTF-8")
        raise ConfigError(msg) from exc


def load_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one config file and its ``_base_`` files into a plain dict.

    Raises:
        ConfigError: missing file, unsupported suffix, syntax error, a cycle of bases, a key
            defined by two bases, or a dict merged into a non-dict.
    """
    path = Path(path).expanduser().resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        msg = f"_base_ files form a cycle: {chain}"
        raise ConfigError(msg)
    if not path.is_file():
        msg = f"{path}: is a directory, not a config file" if path.is_dir() else f"{path}: no such config file"
        raise ConfigError(msg)
    if path.suffix not in SUFFIXES:
        msg = f"{path}: unsupported config format {path.suffix!r}; allowed: {', '.join(SUFFIXES)}"
        raise ConfigError(msg)
    text = _substitute_predefined(read_text(path), path)
    text, names = _placeholders(text)
    data = _parse(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        msg = f"{path}: a config must be a mapping at the top level, got {type(data).__name__}"
        raise ConfigError(msg)
    if BASE_KEY not in data:
        if names:
            msg = f"{path}: uses {{{{ _base_.… }}}} but has no _base_"
            raise ConfigError(msg)
        return data
    bases = data.pop(BASE_KEY)
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        msg = f"{path}: _base_ must be a file name or a list of them, got {bases!r}"
        raise ConfigError(msg)
    merged: dict[str, Any] = {}
    for b in bases:
        cfg = load_file(path.parent / b, (*_seen, path))
        dup = sorted(merged.keys() & cfg.keys())
        if dup:
            msg = f"{path}: keys defined by more than one _base_ file: {', '.join(dup)}"
            raise ConfigError(msg)
        merged.update(cfg)
    data = _resolve_placeholders(data, names, merged, path)
    return cast(dict[str, Any], merge(merged, data, source=str(path)))


# --------------------------------------------------------------------------- merging


def merge(base: Any, child: Mapping[str, Any], *, allow_list_keys: bool = False, source: str = "",
          _path: str = "") -> Any:
    """``child`` merged into a copy of ``base`` (mmcv's ``Config._merge_a_into_b``).

    Dicts merge key by key unless the child's dict has ``_delete_=True``; other values
    replace. With ``allow_list_keys``, a digit key in ``child`` indexes a list in ``base``.
    """
    if isinstance(base, (list, tuple)) and allow_list_keys:
        out: Any = list(base)
    elif isinstance(base, Mapping):
        out = dict(base)
    else:
        msg = (f"{_path or '(config)'}: is a {type(base).__name__} ({base!r:.40}) in the base config"
               f"{f' ({source})' if source else ''}, so it has no keys to set; set it whole instead")
        raise ConfigError(msg)
    for k, v in child.items():
        where = f"{_path}.{k}" if _path else str(k)
        if isinstance(out, list):
            if not (isinstance(k, str) and k.isdigit()):
                msg = (f"{where}: {_path or '(config)'} is a list of {len(out)}; index it with a number "
                       f"0..{len(out) - 1}, e.g. {_path}.0" if out else f"{where}: {_path} is an empty list")
                raise ConfigError(msg)
            i = int(k)
            if i >= len(out):
                msg = f"{where}: index {i} is past the end of a list of {len(out)}"
                raise ConfigError(msg)
            out[i] = merge(out[i], v, allow_list_keys=True, source=source, _path=where) if isinstance(v, dict) else v
            continue
        if isinstance(v, dict):
            v = dict(v)
            delete = v.pop(DELETE_KEY, False)
            if k in out and not delete:
                allowed = (dict, list, tuple) if allow_list_keys else (dict,)
                if not isinstance(out[k], allowed):
                    if allow_list_keys:  # --cfg-options a.b.c=...: a.b is not a dict
                        msg = (f"{where}: is a {type(out[k]).__name__} ({out[k]!r:.40}) in the config, so "
                               f"{where}.{next(iter(v), '…')} cannot be set; set {where} itself")
                    else:
                        msg = (
                            f"{where}: is a dict here but a {type(out[k]).__name__} in the base config"
                            f"{f' ({source})' if source else ''}; add _delete_=True to replace it"
                        )
                    raise ConfigError(msg)
                out[k] = merge(out[k], v, allow_list_keys=allow_list_keys, source=source, _path=where)
            else:
                out[k] = _strip_delete(v)
        else:
            out[k] = v
    return out


def _strip_delete(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_delete(v) for k, v in obj.items() if k != DELETE_KEY}
    if isinstance(obj, list):
        return [_strip_delete(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- --cfg-options


_OPEN = {"(": ")", "[": "]"}


def _unbalanced(where: str, text: str) -> NoReturn:
    msg = f"--cfg-options {where}={text!r}: unbalanced brackets; write lists as a,b or [a,b] and tuples as (a,b)"
    raise ConfigError(msg)


def _split_items(body: str, where: str, text: str) -> list[str]:
    """``body`` cut at the commas outside brackets."""
    parts, stack, start = [], [], 0
    for i, ch in enumerate(body):
        if ch in _OPEN:
            stack.append(_OPEN[ch])
        elif ch in ")]":
            if not stack or stack.pop() != ch:
                _unbalanced(where, text)
        elif ch == "," and not stack:
            parts.append(body[start:i])
            start = i + 1
    if stack:
        _unbalanced(where, text)
    if start < len(body):  # a trailing comma ends the list ('a,' is ['a'], '(1,)' is (1,))
        parts.append(body[start:])
    return parts


def _encloses(val: str) -> bool:
    """Whether the bracket opening ``val`` is closed by its last character."""
    depth = 0
    for i, ch in enumerate(val):
        depth += ch in _OPEN
        depth -= ch in ")]"
        if depth == 0:
            return i == len(val) - 1
    return False


def _option_scalar(val: str) -> Any:
    for convert in (int, float):
        try:
            return convert(val)
        except ValueError:
            pass
    if val.lower() in ("true", "false"):
        return val.lower() == "true"
    return None if val == "None" else val


def parse_value(text: str, where: str = "value") -> Any:
    """A ``--cfg-options`` value as mmcv 1.7.2's ``DictAction`` reads it.

    Quotes around the value are dropped and spaces removed; ``[...]`` is a list, ``(...)``
    a tuple, ``a,b`` a list; items are ints, floats, ``True``/``False`` (any case),
    ``None`` or strings. ``(1,2),(3,4)`` is a list of two tuples (mmcv 1.7.2 recurses without
    end there).

    >>> parse_value("[(1,2),[x,y],z]"), parse_value("(1,)"), parse_value("a,")
    ([(1, 2), ['x', 'y'], 'z'], (1,), ['a'])
    >>> parse_value("'1e3'"), parse_value("null"), parse_value("None")
    (1000.0, 'null', None)

    Raises:
        ConfigError: unbalanced brackets, naming ``where`` and the value.
    """
    val = text.strip("'\"").replace(" ", "")
    kind: Callable[[list[Any]], Any] = list
    if val[:1] in _OPEN and val[-1:] == _OPEN[val[:1]] and _encloses(val):
        body, kind = val[1:-1], (tuple if val[0] == "(" else list)
    elif "," in val:
        body = val
    else:
        return _option_scalar(val)
    return kind([parse_value(item, where) for item in _split_items(body, where, text)])


def parse_options(options: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}``.

    Raises:
        ConfigError: an option without ``=`` or with unbalanced brackets.
    """
    out: dict[str, Any] = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            msg = f"--cfg-options {opt!r}: expected KEY=VALUE, e.g. lr_config.step=[8,11]"
            raise ConfigError(msg)
        out[key.strip()] = parse_value(value, key)
    return out


def apply_options(cfg: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with dotted ``options`` merged in (mmcv's ``merge_from_dict``; digit keys index lists)."""
    nested: dict[str, Any] = {}
    for full_key, value in options.items():
        d = nested
        *parents, last = full_key.split(".")
        for k in parents:
            d = d.setdefault(k, {})
            if not isinstance(d, dict):
                msg = f"--cfg-options {full_key}: {k!r} is set both as a value and as a parent key"
                raise ConfigError(msg)
        d[last] = value
    return merge(cfg, nested, allow_list_keys=True, source="--cfg-options")  # type: ignore[no-any-return]


def load_config(path: str | Path, options: Iterable[str] | Mapping[str, Any] = ()) -> dict[str, Any]:
    """The merged config dict of ``path`` with ``--cfg-options`` applied (not yet validated)."""
    cfg = load_file(path)
    opts = options if isinstance(options, Mapping) else parse_options(options)
    return apply_options(cfg, opts) if opts else cfg


__all__ = [
    "BASE_KEY", "DELETE_KEY", "SUFFIXES", "ConfigError", "apply_options", "load_config", "load_file", "merge",
    "parse_options", "parse_value",
]
