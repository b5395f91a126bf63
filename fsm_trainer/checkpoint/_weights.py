"""Weights import: a checkpoint's tensors into a model and an optimizer, and ``.pth`` files.

A tensor goes into the model only if its name, shape and dtype are the model's: a dtype is
never cast (an ``int32`` tensor where the model has ``float32`` is refused, not converted).
An optimizer state is checked against the optimizer's param groups and parameters before
``load_state_dict`` sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsm_trainer.checkpoint._discovery import _follow_latest
from fsm_trainer.checkpoint._errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NotACheckpointError,
)
from fsm_trainer.checkpoint._format import load_checkpoint

_log = logging.getLogger("fsm_trainer")

Layout = Mapping[str, tuple[tuple[int, ...], torch.dtype]]
"""Tensor name -> (shape, dtype): what a model's ``state_dict()`` holds."""

_PARAM_SHAPED = frozenset({
    "momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "acc_delta", "sum", "exp_inf",
    "ax", "prev", "step_size", "grad_avg",
})
"""Per-parameter optimizer states that torch's optimizers keep in the parameter's shape."""


def model_layout(model: Any) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The :data:`Layout` of ``model.state_dict()`` (entries that are not tensors are left out)."""
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")


def _differences(own: Layout, saved: Mapping[str, torch.Tensor], *, dtypes: bool) -> tuple[list[str], ...]:
    """``(missing, unexpected, shape differs, dtype differs)`` keys of ``saved`` against ``own``."""
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    common = set(own) & set(saved)
    shapes = sorted(k for k in common if own[k][0] != tuple(saved[k].shape))
    kinds = sorted(k for k in common if dtypes and k not in shapes and own[k][1] != saved[k].dtype)
    return missing, unexpected, shapes, kinds


def _describe(what: str, own: Layout, saved: Mapping[str, torch.Tensor], diff: tuple[list[str], ...]) -> str:
    missing, unexpected, shapes, kinds = diff
    parts = []
    if missing:
        parts.append(f"missing in the checkpoint: {_names(missing)}")
    if unexpected:
        parts.append(f"not in the model: {_names(unexpected)}")
    if shapes:
        parts.append("shape differs: " + _names([f"{k} {tuple(saved[k].shape)} vs {own[k][0]}" for k in shapes]))
    if kinds:
        parts.append("dtype differs (never cast): " + _names([f"{k} {saved[k].dtype} vs {own[k][1]}" for k in kinds]))
    return f"the checkpoint does not fit {what}: " + "; ".join(parts)


def check_model_fit(layout: Layout, saved: Mapping[str, torch.Tensor], what: str, where: Path) -> None:
    """Raise unless ``saved`` has exactly the names, shapes and dtypes of ``layout``.

    Raises:
        CheckpointMismatchError: naming the checkpoint and the keys that differ.
    """
    diff = _differences(layout, saved, dtypes=True)
    if any(diff):
        msg = f"{where}: {_describe(what, layout, saved, diff)}"
        raise CheckpointMismatchError(msg)


def load_model_state(model: Any, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True,
                     logger: logging.Logger | None = None,
                     exact_dtype: bool = True) -> tuple[list[str], list[str], list[str]]:
    """Copy ``state_dict`` into ``model``; return the ``(missing, unexpected, wrong_shape)`` keys.

    ``wrong_shape`` also lists the keys of another dtype when ``exact_dtype`` (the default):
    they are never cast. ``exact_dtype=False`` lets ``load_state_dict`` convert them (as for
    ``.pth`` weights imported by :func:`load_weights`).

    Raises:
        CheckpointMismatchError: with ``strict``, when any key is missing, unexpected or of
            another shape or dtype; the message names them. ``strict=False`` loads the keys
            that fit.
    """
    own = model_layout(model)
    missing, unexpected, shapes, kinds = diff = _differences(own, state_dict, dtypes=exact_dtype)
    wrong = sorted(shapes + kinds)
    if any(diff):
        text = _describe(type(model).__name__, own, state_dict, diff)
        if strict:
            raise CheckpointMismatchError(text + "; pass strict=False to load the keys that fit")
        (logger or _log).warning("%s; loading the %d keys that fit", text, len(own) - len(missing) - len(wrong))
    fit = {k: v for k, v in state_dict.items() if k in own and k not in wrong}
    from fsm_trainer.dist import fsdp_load_model, is_fsdp

    if is_fsdp(model):  # a collective: every rank loads the same full state dict
        fsdp_load_model(model, fit)
    else:
        model.load_state_dict(fit, strict=False)
    return missing, unexpected, wrong


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_group(saved: Mapping[Any, Any], live: Mapping[str, Any], where: str) -> None:
    for key, value in live.items():
        if key in ("params", "param_names") or isinstance(value, torch.Tensor):
            continue
        if _is_number(value):
            if not _is_number(saved.get(key)):
                msg = f"{where}.{key} must be a number, got {saved.get(key)!r:.40}"
                raise CorruptCheckpointError(msg)
        elif isinstance(value, (tuple, list)) and all(_is_number(v) for v in value):
            got = saved.get(key)
            if not isinstance(got, (tuple, list)) or len(got) != len(value) or not all(_is_number(v) for v in got):
                msg = f"{where}.{key} must be {len(value)} numbers, got {got!r:.40}"
                raise CorruptCheckpointError(msg)
        elif isinstance(value, bool) and key in saved and not isinstance(saved[key], bool):
            msg = f"{where}.{key} must be true or false, got {saved[key]!r:.40}"
            raise CorruptCheckpointError(msg)


def _check_optimizer(optimizer: Any, saved: Any, where: str) -> None:
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or not isinstance(
        saved.get("param_groups"), list
    ):
        msg = f"{where}: not an Optimizer.state_dict() (a 'state' object and a 'param_groups' list)"
        raise CorruptCheckpointError(msg)
    groups, state, live = saved["param_groups"], saved["state"], optimizer.param_groups
    if len(groups) != len(live):
        msg = f"{where}: {len(groups)} param groups saved, the optimizer has {len(live)}"
        raise CheckpointMismatchError(msg)
    ids: list[Any] = []
    for i, (g, lg) in enumerate(zip(groups, live, strict=True)):
        params = g.get("params") if isinstance(g, dict) else None
        if not isinstance(params, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in params):
            msg = f"{where}: param_groups[{i}] must be an object with a 'params' list of ints"
            raise CorruptCheckpointError(msg)
        if len(params) != len(lg["params"]):
            msg = f"{where}: param_groups[{i}] has {len(params)} parameters saved, the optimizer {len(lg['params'])}"
            raise CheckpointMismatchError(msg)
        _check_group(g, lg, f"{where}: param_groups[{i}]")
        ids.extend(params)
    if len(set(ids)) != len(ids):
        msg = f"{where}: a parameter id is listed twice in param_groups"
        raise CorruptCheckpointError(msg)
    by_id = dict(zip(ids, (p for lg in live for p in lg["params"]), strict=True))
    casts = type(optimizer).load_state_dict is torch.optim.Optimizer.load_state_dict
    builtin = type(optimizer).__module__.startswith("torch.optim")
    for pid, per_param in state.items():
        if pid not in by_id or not isinstance(per_param, dict):
            msg = f"{where}: state of parameter {pid!r:.40}, which no param group lists (or not an object)"
            raise CorruptCheckpointError(msg)
        p = by_id[pid]
        for key, v in per_param.items():
            if not isinstance(v, torch.Tensor):
                continue
            if key == "step":
                if builtin and (v.numel() != 1 or not v.is_floating_point()):
                    msg = f"{where}: state[{pid}].step must be one float, not {v.dtype} {tuple(v.shape)}"
                    raise CorruptCheckpointError(msg)
                continue
            if v.dim() >= 1 and (key in _PARAM_SHAPED or v.numel() == p.numel()) and v.shape != p.shape:
                msg = (f"{where}: state[{pid}].{key} has shape {tuple(v.shape)}, its parameter "
                       f"{tuple(p.shape)}")
                raise CorruptCheckpointError(msg)
            if casts and p.is_floating_point() and v.dim() >= 1 and v.dtype != p.dtype:
                msg = f"{where}: state[{pid}].{key} is {v.dtype}, its parameter {p.dtype} (never cast)"
                raise CorruptCheckpointError(msg)


def check_optimizer_state(optimizer: Any, saved: Any, where: Path) -> None:
    """Raise unless ``saved`` fits ``optimizer`` (an optimizer or a dict of them) exactly.

    The param groups must match in number and size, their numeric hyperparameters be numbers
    (tuples of as many numbers); each per-parameter tensor must have its parameter's shape
    (torch's param-shaped states, and any state of the parameter's size) and, for optimizers
    whose ``load_state_dict`` would cast it, its dtype.

    Raises:
        CheckpointMismatchError: the optimizer has other groups or parameter counts.
        CorruptCheckpointError: the saved state is malformed or inconsistent with the parameters.
    """
    if isinstance(optimizer, Mapping):
        if not isinstance(saved, dict) or set(saved) != set(optimizer):
            got = sorted(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
            msg = f"{where}: the saved optimizers {got} are not this run's {sorted(optimizer)}"
            raise CheckpointMismatchError(msg)
        for name, o in optimizer.items():
            _check_optimizer(o, saved[name], f"{where}: optimizer {name!r}")
    else:
        _check_optimizer(optimizer, saved, f"{where}: optimizer")


def load_optimizer_state(model: Any, optimizer: Any, saved: Any) -> None:
    """Load ``saved`` (``Optimizer.state_dict()`` layout, or a dict of them for a dict of
    optimizers) into ``optimizer``; through FSDP's full-state loading when ``model`` is sharded
    (a collective).

    Raises:
        CheckpointMismatchError: ``load_state_dict`` refused the state (its message is kept).
    """
    from fsm_trainer.dist import fsdp_load_optimizer, is_fsdp

    try:
        if isinstance(optimizer, Mapping):
            pairs = [(o, saved[k]) for k, o in optimizer.items()]
        else:
            pairs = [(optimizer, saved)]
        for o, sd in pairs:
            if is_fsdp(model):
                fsdp_load_optimizer(model, o, sd)
            else:
                o.load_state_dict(sd)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        msg = f"the saved optimizer state does not fit {type(optimizer).__name__}: {exc}"
        raise CheckpointMismatchError(msg) from exc


def _numpy_globals() -> list[Any]:
    scalar = getattr(getattr(np, "_core", np).multiarray, "scalar", None) or np.core.multiarray.scalar  # type: ignore[attr-defined]
    kinds = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]
    return [scalar, np.dtype, *(type(np.dtype(k)) for k in kinds)]


def _torch_file(path: Path) -> bool:
    """A ``.pth``/``.pt`` file is read with ``torch.load``, never as a ``latest`` pointer."""
    return path.suffix in (".pth", ".pt") and path.is_file()


def read_pth(path: Path, map_location: Any, allow_numpy: bool) -> Any:
    """What ``torch.load(path, map_location, weights_only=True)`` returns, NumPy scalars allowed
    with ``allow_numpy`` (mmcv writes them in ``meta``); never ``weights_only=False``.

    Raises:
        NotACheckpointError: the file needs more than ``weights_only`` allows, or is not a PyTorch file.
    """
    import contextlib
    import pickle

    allowed = torch.serialization.safe_globals(_numpy_globals()) if allow_numpy else contextlib.nullcontext()
    try:
        with allowed:
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "numpy" in str(exc) and not allow_numpy:
            hint = (" It holds NumPy objects (mmcv writes NumPy scalars in 'meta'); if you trust where the "
                    "file comes from, pass allow_numpy=True to allow NumPy scalar types.")
        msg = (f"{path} needs more than torch.load(weights_only=True) allows: {first}. fsm_trainer never "
               f"loads files with weights_only=False.{hint}")
        raise NotACheckpointError(msg) from exc
    except (RuntimeError, OSError, EOFError, ValueError, IndexError, KeyError, TypeError) as exc:
        # torch's weights-only unpickler reports a damaged or foreign file with any of these
        msg = f"{path}: cannot be read as a PyTorch file ({type(exc).__name__}: {exc})"
        raise NotACheckpointError(msg) from exc


def load_weights(
    model: Any, path: str | Path, *, strict: bool = False, allow_numpy: bool = False,
    logger: logging.Logger | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """mmcv's ``load_from``: copy weights from a checkpoint or a ``.pth`` file into ``model``.

    An fsm_trainer checkpoint is loaded with :func:`load_checkpoint` (dtypes must match
    exactly). Any other file goes through ``torch.load(weights_only=True)`` and never with
    ``weights_only=False``; the weights are the file's ``state_dict`` entry (mmcv layout) or
    the file itself, with a ``module.`` prefix removed as mmcv does, and are converted to the
    model's dtypes as ``load_state_dict`` does.

    Args:
        strict: refuse missing, unexpected or differently shaped keys (mmcv's default for
            ``load_from`` is ``False``, as here).
        allow_numpy: allow NumPy scalars and dtypes in the file (mmcv writes them in ``meta``);
            only for files whose origin you trust.

    Returns:
        ``(missing, unexpected, wrong_shape)`` key lists.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointMismatchError: the weights do not fit the model (with ``strict``).
        NotACheckpointError: the file needs more than ``weights_only`` allows; the message says
            what and how to opt in.
    """
    path = Path(path)
    if not path.exists():
        msg = f"load_from={str(path)!r}: no such file or directory"
        raise CheckpointNotFoundError(msg)
    if path.is_dir() or (not _torch_file(path) and _follow_latest(path) is not None):
        return load_model_state(model, load_checkpoint(path).model, strict=strict, logger=logger)
    obj = read_pth(path, "cpu", allow_numpy)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        msg = f"{path}: no state_dict of named tensors found (got {type(sd).__name__})"
        raise NotACheckpointError(msg)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return load_model_state(model, sd, strict=strict, logger=logger, exact_dtype=False)
