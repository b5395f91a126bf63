"""The one cattrs converter: states and tables to plain JSON-able data and back.

>>> from fsm_trainer.state import TrainState
>>> s = TrainState(epoch=2, iter=90, mode="train", outputs={"log_vars": {"loss": 0.5}})
>>> structure(unstructure(s), TrainState) == s
True
>>> state_from_json(state_to_json(s)) == s
True

Tensors and NumPy scalars in ``outputs`` are written as plain numbers (``.tolist()``): a
saved state keeps what was logged, never autograd graphs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
import cattrs.v
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from fsm_trainer.errors import ArgumentTypeError, FsmTrainerError
from fsm_trainer.state import TrainState
from fsm_trainer.transitions import TransitionTable

T = TypeVar("T")


class StateFormatError(FsmTrainerError, ValueError):
    """Data cannot be structured into the requested class; the message names every bad path."""


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # torch tensors and numpy arrays/scalars
    if callable(tolist):
        return _plain(tolist())
    msg = f"cannot serialize {type(value).__name__} {value!r:.80}: use numbers, strings, lists or dicts"
    raise ArgumentTypeError(msg)


def _mapping(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        msg = f"expected a mapping, got {type(value).__name__}"
        raise ArgumentTypeError(msg)
    return dict(value)


def strict_int(value: Any, _: Any) -> int:
    """Structure hook: an int, never a bool, float or numeric string (cattrs would coerce)."""
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"expected an int, got {type(value).__name__} {value!r:.40}"
        raise ArgumentTypeError(msg)
    return value


def strict_float(value: Any, _: Any) -> float:
    """Structure hook: an int or float, never a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"expected a number, got {type(value).__name__} {value!r:.40}"
        raise ArgumentTypeError(msg)
    return value


def strict_str(value: Any, _: Any) -> str:
    """Structure hook: a string, never a number turned into one."""
    if not isinstance(value, str):
        msg = f"expected a string, got {type(value).__name__} {value!r:.40}"
        raise ArgumentTypeError(msg)
    return value


def strict_bool(value: Any, _: Any) -> bool:
    """Structure hook: a bool, never 0/1 or a string."""
    if not isinstance(value, bool):
        msg = f"expected true or false, got {type(value).__name__} {value!r:.40}"
        raise ArgumentTypeError(msg)
    return value


converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
# cattrs coerces by default (int("3"), str(3)); data from files must already have the right type.
converter.register_structure_hook(int, strict_int)
converter.register_structure_hook(str, strict_str)
converter.register_structure_hook(bool, strict_bool)
converter.register_unstructure_hook(
    TrainState,
    make_dict_unstructure_fn(
        TrainState, converter,
        outputs=override(unstruct_hook=_plain), hook_states=override(unstruct_hook=_plain),
    ),
)
converter.register_structure_hook(
    TrainState,
    make_dict_structure_fn(
        TrainState, converter, _cattrs_forbid_extra_keys=True,
        outputs=override(struct_hook=_mapping), hook_states=override(struct_hook=_mapping),
    ),
)


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, TypeError) and str(exc).startswith("expected"):
        return str(exc)  # our strict hooks already say what was expected and what came
    return cattrs.v.format_exception(exc, type_)


def unstructure(obj: Any) -> Any:
    """Plain data (dicts, lists, numbers, strings) for ``obj``."""
    return converter.unstructure(obj)


def structure(data: Any, cls: type[T]) -> T:
    """Build a ``cls`` from plain data.

    Raises:
        StateFormatError: listing every wrong, missing or unknown key with its path.
    """
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # cattrs raises ClassValidationError / plain errors
        if isinstance(exc, cattrs.BaseValidationError):
            details = "; ".join(cattrs.transform_error(exc, path=f"${cls.__name__}", format_exception=_describe))
        else:
            details = str(exc)
        msg = f"invalid {cls.__name__}: {details}"
        raise StateFormatError(msg) from exc


def state_to_json(state: TrainState) -> str:
    """The state as a JSON string (keys in field order)."""
    return json.dumps(unstructure(state), allow_nan=True)


def state_from_json(text: str) -> TrainState:
    """The inverse of :func:`state_to_json`."""
    return structure(json.loads(text), TrainState)


def table_to_json(table: TransitionTable) -> str:
    """The transition table as JSON; :func:`table_from_json` gives back an equal table."""
    return json.dumps(unstructure(table))


def table_from_json(text: str) -> TransitionTable:
    """The inverse of :func:`table_to_json`."""
    return structure(json.loads(text), TransitionTable)
