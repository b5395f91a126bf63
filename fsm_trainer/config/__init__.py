"""mmcv-style training configs: load, merge, check, build.

>>> from fsm_trainer.config import load
>>> cfg = load("configs/digits_mlp.py")          # doctest: +SKIP
>>> built = build(cfg)                            # doctest: +SKIP
>>> run(TrainState(), built.table, **built.run_kwargs())   # doctest: +SKIP

:func:`load` reads a file (``.py``, ``.yaml``, ``.toml``, ``.json``) with its ``_base_``
files, applies ``--cfg-options``, structures it into a :class:`TrainConfig` and validates it;
every problem is reported at once in one :class:`ConfigError`, each naming its key path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fsm_trainer.config.loader import ConfigError as ConfigError
from fsm_trainer.config.loader import apply_options as apply_options
from fsm_trainer.config.loader import load_config as load_config
from fsm_trainer.config.loader import merge as merge
from fsm_trainer.config.loader import parse_options as parse_options
from fsm_trainer.config.schema import TrainConfig as TrainConfig
from fsm_trainer.config.schema import structure_config as structure_config
from fsm_trainer.config.schema import unstructure_config as unstructure_config


def from_dict(raw: Mapping[str, Any]) -> TrainConfig:
    """Structure and validate a config dict.

    Raises:
        ConfigError: every shape problem, or (if the shape is right) every value problem.
    """
    from fsm_trainer.config.validate import check_config, validate

    try:
        return check_config(structure_config(raw))
    except ConfigError as exc:
        if not isinstance(raw, Mapping) or not exc.errors:
            raise
        shape_errors = exc.errors
    # Report the other problems too: validate the config without the keys that failed to
    # structure (required ones get stand-ins), and keep only messages about other keys.
    bad = {_top_key(e) for e in shape_errors}
    partial = {k: v for k, v in raw.items() if k not in bad}
    for k, v in _STAND_INS.items():
        if k == "runner" and "runner" not in raw and ("total_epochs" in partial or "total_iters" in partial):
            continue  # made from total_epochs / total_iters
        if k in bad or k not in partial:
            partial[k] = v
            bad.add(k)
    try:
        more = validate(structure_config(partial))
    except ConfigError:
        more = []
    raise ConfigError([*shape_errors, *(e for e in more if _top_key(e) not in bad)])


_STAND_INS: dict[str, Any] = {
    "model": {"type": dict}, "optimizer": {"type": "SGD", "lr": 0.1}, "data": {"train": {"type": dict}},
    "runner": {"type": "EpochBasedRunner", "max_epochs": 1},
}


def _top_key(error: str) -> str:
    path = error.split(":", 1)[0]
    return path.split(".", 1)[0].split("[", 1)[0]


def load(path: str | Path, options: Iterable[str] | Mapping[str, Any] = ()) -> TrainConfig:
    """Load, merge, override, structure and validate the config file ``path``.

    Raises:
        ConfigError: naming the file and every problem found.
    """
    try:
        return from_dict(load_config(path, options))
    except ConfigError as exc:
        if exc.source is None:
            # The same errors, now naming the file; what caused them (an OSError...) stays the cause.
            raise ConfigError(exc.errors, str(path)) from exc.__cause__
        raise


__all__ = [
    "ConfigError", "TrainConfig", "apply_options", "from_dict", "load", "load_config", "merge", "parse_options",
    "structure_config", "unstructure_config",
]
