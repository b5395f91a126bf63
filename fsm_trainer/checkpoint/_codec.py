"""The tagged codec: structured values (optimizer and hook states) as plain JSON data plus tensors.

Tensors are replaced by ``{"__tensor__": key}``, NumPy arrays by ``{"__ndarray__": ...}``,
tuples by ``{"__tuple__": [...]}`` and dicts whose keys are not plain strings by
``{"__dict__": [[key, value], ...]}``; everything else must be ``None``, a bool, an int, a
float, a string, a list or a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fsm_trainer.checkpoint._errors import CorruptCheckpointError
from fsm_trainer.checkpoint._layout import TENSOR_FILE
from fsm_trainer.errors import ArgumentTypeError

# Values stored as they are: a list or tuple of only these (an RNG state's 624 words) is copied
# in one pass instead of being walked element by element, when encoded and when decoded.
_SCALARS = frozenset({type(None), bool, int, float, str})


def encode(obj: Any, path: str, tensors: dict[str, torch.Tensor], _seen: dict[Any, str] | None = None) -> Any:
    """Plain JSON data for ``obj``; its tensors are added to ``tensors`` under keys from ``path``.

    A tensor met twice (same storage, offset, shape, strides, dtype: tied weights) is stored once.

    Raises:
        ArgumentTypeError: naming the path of a value that is not data (a module, a function...).
    """
    seen = {} if _seen is None else _seen
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        ident = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() and ident in seen:
            return {"__tensor__": seen[ident]}
        key = path
        while key in tensors:
            key = f"{path}#{len(tensors)}"
        tensors[key] = t
        seen[ident] = key
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": encode(torch.from_numpy(np.ascontiguousarray(obj)), path, tensors, seen)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, f"{path}/{k}", tensors, seen) for k, v in obj.items()}
        return {"__dict__": [[encode(k, f"{path}/key", tensors, seen), encode(v, f"{path}/{k}", tensors, seen)]
                             for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)) and _SCALARS.issuperset(map(type, obj)):
        return {"__tuple__": list(obj)} if isinstance(obj, tuple) else list(obj)
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, f"{path}/{i}", tensors, seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, f"{path}/{i}", tensors, seen) for i, v in enumerate(obj)]
    msg = (
        f"cannot store a {type(obj).__name__} at {path!r} in a checkpoint: state_dicts may hold "
        "None, bools, numbers, strings, lists, tuples, dicts, tensors and NumPy arrays"
    )
    raise ArgumentTypeError(msg)


def _ndarray(value: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        msg = f"__ndarray__ must wrap a tensor reference, got {value!r:.80}"
        raise CorruptCheckpointError(msg)
    try:
        return value.numpy()
    except (TypeError, RuntimeError) as exc:
        msg = f"__ndarray__ of dtype {value.dtype} has no NumPy equivalent ({exc})"
        raise CorruptCheckpointError(msg) from exc


def decode(data: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode`.

    Raises:
        CorruptCheckpointError: a tensor reference is unknown or a tag is malformed.
    """
    if isinstance(data, list):
        if _SCALARS.issuperset(map(type, data)):
            return list(data)
        return [decode(v, tensors) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        ((tag, value),) = data.items()
        if tag == "__tensor__":
            if not isinstance(value, str) or value not in tensors:
                msg = f"reference to a tensor {value!r:.80} that is not in {TENSOR_FILE}"
                raise CorruptCheckpointError(msg)
            return tensors[value]
        if tag == "__ndarray__":
            return _ndarray(decode(value, tensors))
        if tag == "__tuple__" and isinstance(value, list):
            return tuple(decode(v, tensors) for v in value)
        if tag == "__dict__" and isinstance(value, list):
            out = {}
            for pair in value:
                if not isinstance(pair, list) or len(pair) != 2:
                    msg = f"malformed __dict__ entry {pair!r:.80}"
                    raise CorruptCheckpointError(msg)
                key = decode(pair[0], tensors)
                try:
                    hash(key)
                    hashable = not isinstance(key, torch.Tensor)
                except TypeError:
                    hashable = False
                if not hashable:
                    msg = f"unhashable dict key {pair[0]!r:.80}"
                    raise CorruptCheckpointError(msg)
                out[key] = decode(pair[1], tensors)
            return out
    for k in data:
        if k.startswith("__"):
            msg = f"unknown tag {k!r:.80}"
            raise CorruptCheckpointError(msg)
    return {k: decode(v, tensors) for k, v in data.items()}
