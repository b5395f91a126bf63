"""mmcv 1.7.2's module-level checkpoint functions (``mmcv.runner.checkpoint``) on fsm_trainer's checkpoints.

* :func:`save_checkpoint` writes an fsm_trainer checkpoint *directory* (safetensors + JSON,
  committed atomically; see :mod:`fsm_trainer.checkpoint`) at ``filename`` without its
  ``.pth`` suffix: the model's weights, the optimizer's state and ``meta``.
* :func:`load_checkpoint` loads weights into a model from such a directory (or any
  fsm_trainer checkpoint, or a ``latest`` file) or from an mmcv ``.pth`` file, read with
  ``torch.load(weights_only=True)`` only, and returns mmcv's dict.
* :func:`load_state_dict`, :func:`get_state_dict`, :func:`weights_to_cpu`,
  :func:`_load_checkpoint` and :func:`_load_checkpoint_with_prefix` as mmcv's.

A checkpoint written by :func:`save_checkpoint` records no run: its run state is the start
of a run at ``meta['epoch']``/``meta['iter']`` (0 when absent) of a placeholder epoch-based
workflow ``[('train', 1)]``. ``runner.load_checkpoint`` reads it, and ``runner.resume``
loads its weights, optimizer state, counters and meta; a following ``runner.run`` continues
from it only if the run is epoch-based with the workflow ``[('train', 1)]`` (the checkpoint
must belong to the run's workflow). Checkpoints written by the runners
(``runner.save_checkpoint``, ``CheckpointHook``) hold the complete run state.

>>> import tempfile, torch
>>> net = torch.nn.Linear(2, 1)
>>> with tempfile.TemporaryDirectory() as d:
...     path = save_checkpoint(net, f"{d}/model.pth", meta={"epoch": 3})
...     ck = load_checkpoint(torch.nn.Linear(2, 1), f"{d}/model.pth")
>>> path.name, sorted(ck), ck["meta"]["epoch"]
('model', ['meta', 'state_dict'], 3)
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fsm_trainer.checkpoint._errors import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    NotACheckpointError,
)
from fsm_trainer.errors import ArgumentTypeError, FsmTrainerError

_log = logging.getLogger("fsm_trainer")
_REMOTE = ("http://", "https://", "torchvision://", "open-mmlab://", "openmmlab://", "mmcls://", "pavi://", "s3://")
_SUFFIXES = (".pth", ".pt", ".ckpt")


class StateDictMismatchError(CheckpointMismatchError, RuntimeError):
    """``load_state_dict(..., strict=True)`` found missing, unexpected or differently shaped keys.

    A ``RuntimeError`` as mmcv's, and a :class:`~fsm_trainer.checkpoint.CheckpointMismatchError`.
    """


class CheckpointArgumentError(ArgumentTypeError):
    """An argument of :func:`save_checkpoint` or :func:`load_checkpoint` has the wrong type."""


class MmcvCheckpointNameError(FsmTrainerError, ValueError):
    """:func:`save_checkpoint` was given a file name that cannot name a checkpoint directory."""


def _is_wrapper(module: Any) -> bool:
    return isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel))


def _wraps(model: Any) -> bool:
    """Whether ``model`` is a wrapper: ``DataParallel``/``DistributedDataParallel``, or any module whose
    only content is the module in its ``.module`` (no parameter or buffer of its own)."""
    if _is_wrapper(model):
        return True
    inner = getattr(model, "module", None)
    return (isinstance(model, nn.Module) and isinstance(inner, nn.Module) and list(model._modules) == ["module"]
            and not model._parameters and not model._buffers)


def _unwrap(model: Any) -> Any:
    """``model`` without its wrappers (see :func:`_wraps`)."""
    while _wraps(model):
        model = model.module
    return model


# ---------------------------------------------------------------------------------------------- state dicts


def load_state_dict(module: nn.Module, state_dict: Mapping[str, Any], strict: bool = False,
                    logger: logging.Logger | None = None) -> None:
    """Copy ``state_dict`` into ``module`` as mmcv's ``load_state_dict`` (``strict=False`` by default).

    Wrapped modules (``DataParallel``, ``DistributedDataParallel``), at the top or nested, are
    loaded through their ``.module``. Values are converted to the module's dtypes as
    ``nn.Module.load_state_dict`` does; a key of another shape is not loaded. Missing keys
    (``num_batches_tracked`` aside), unexpected keys and shape mismatches are reported in one
    message, mmcv's: a warning on ``logger`` (the ``fsm_trainer`` logger when ``None``; mmcv
    prints it) on rank 0, or, with ``strict``, an error on every rank.

    Raises:
        StateDictMismatchError: with ``strict``, when anything does not match.

    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> load_state_dict(net, {"weight": torch.ones(1, 2), "bias": torch.zeros(1)}, strict=True)
    >>> net.weight.tolist()
    [[1.0, 1.0]]
    """
    missing_all: list[str] = []
    unexpected: list[str] = []
    errors: list[str] = []
    metadata = getattr(state_dict, "_metadata", None)
    sd: Any = OrderedDict(state_dict)
    if metadata is not None:
        sd._metadata = metadata

    def load(m: Any, prefix: str = "") -> None:
        if _is_wrapper(m):
            m = m.module
        local = {} if metadata is None else metadata.get(prefix[:-1], {})
        m._load_from_state_dict(sd, prefix, local, True, missing_all, unexpected, errors)
        for name, child in m._modules.items():
            if child is not None:
                load(child, prefix + name + ".")

    load(_unwrap(module))
    missing = [k for k in missing_all if "num_batches_tracked" not in k]
    if unexpected:
        errors.append(f"unexpected key in source state_dict: {', '.join(unexpected)}\n")
    if missing:
        errors.append(f"missing keys in source state_dict: {', '.join(missing)}\n")
    if not errors:
        return
    text = "\n".join(["The model and loaded state dict do not match exactly\n", *errors])
    if strict:
        raise StateDictMismatchError(text)
    from fsm_trainer.dist import get_dist_info

    if get_dist_info()[0] == 0:
        (logger or _log).warning(text)


def _collect(module: Any, destination: Any, prefix: str, keep_vars: bool, persistent_only: bool) -> Any:
    if _is_wrapper(module):
        module = module.module
    destination._metadata[prefix[:-1]] = local = {"version": module._version}
    for name, param in module._parameters.items():
        if param is not None:
            destination[prefix + name] = param if keep_vars else param.detach()
    skip = module._non_persistent_buffers_set if persistent_only else set()
    for name, buf in module._buffers.items():
        if buf is not None and name not in skip:
            destination[prefix + name] = buf if keep_vars else buf.detach()
    for name, child in module._modules.items():
        if child is not None:
            _collect(child, destination, prefix + name + ".", keep_vars, persistent_only)
    for hook in module._state_dict_hooks.values():
        result = hook(module, destination, prefix, local)
        if result is not None:
            destination = result
    return destination


def get_state_dict(module: nn.Module, destination: OrderedDict[str, Any] | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict[str, Any]:
    """mmcv's ``get_state_dict``: ``module.state_dict()`` through wrappers at any depth.

    ``DataParallel``/``DistributedDataParallel`` modules, also nested inside the model, are
    read through their ``.module`` (no ``module.`` in the keys). As mmcv's, every buffer is
    included, also the non-persistent ones that ``nn.Module.state_dict`` leaves out.

    >>> import torch
    >>> list(get_state_dict(torch.nn.DataParallel(torch.nn.Linear(2, 1))))
    ['weight', 'bias']
    """
    if destination is None:
        destination = OrderedDict()
        destination._metadata = OrderedDict()  # type: ignore[attr-defined]
    elif not hasattr(destination, "_metadata"):
        destination._metadata = OrderedDict()  # type: ignore[attr-defined]
    top = _unwrap(module) if not prefix else module
    return _collect(top, destination, prefix, keep_vars, persistent_only=False)  # type: ignore[no-any-return]


def weights_to_cpu(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """A copy of ``state_dict`` with every tensor on the CPU (its ``_metadata`` kept).

    >>> import torch
    >>> weights_to_cpu({"w": torch.ones(1)})["w"].device.type
    'cpu'
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict((k, v.cpu()) for k, v in state_dict.items())
    out._metadata = getattr(state_dict, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return out


# ---------------------------------------------------------------------------------------------- files


def _checkpoint_path(filename: str | Path) -> Path:
    """The local path of ``filename``: a ``.pth`` name whose file is missing is read as its directory."""
    text = str(filename)
    if text.startswith(_REMOTE):
        msg = (f"filename={text!r}: remote and model-zoo checkpoints are not read; download the file and "
               "pass its local path")
        raise NotACheckpointError(msg)
    path = Path(text).expanduser()
    if not path.exists():
        for suffix in _SUFFIXES:
            if path.name.endswith(suffix) and path.with_name(path.name[: -len(suffix)]).is_dir():
                return path.with_name(path.name[: -len(suffix)])
        msg = f"filename={text!r}: no such file or checkpoint directory"
        raise CheckpointNotFoundError(msg)
    return path


def _move(obj: Any, device: str | torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((k, _move(v, device)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, device) for v in obj)
    return obj


def _read_directory(path: Path, map_location: Any) -> dict[str, Any]:
    from fsm_trainer.checkpoint import load_checkpoint as read

    if map_location is not None and not isinstance(map_location, (str, torch.device)):
        msg = (f"map_location={map_location!r}: the tensors of checkpoint directory {path} are read on the CPU; "
               "pass None, a device string or a torch.device to move them")
        raise CheckpointArgumentError(msg)
    ck = read(path)
    saved = ck.meta.get("config", {})
    meta: dict[str, Any] = dict(saved) if isinstance(saved, dict) else {}
    if ck.data:  # written by a run: mmcv's runners record the counters to continue from in meta
        meta.setdefault("epoch", ck.state.epoch)
        meta.setdefault("iter", ck.state.iter)
    out: dict[str, Any] = {"meta": meta, "state_dict": OrderedDict(ck.model)}
    if ck.optimizer is not None:
        out["optimizer"] = ck.optimizer
    return _move(out, map_location) if map_location is not None else out


def _read_pth(path: Path, map_location: Any, allow_numpy: bool) -> Any:
    from fsm_trainer.checkpoint._weights import read_pth

    return read_pth(path, map_location, allow_numpy)


def _load_checkpoint(filename: str | Path, map_location: Any = None, logger: logging.Logger | None = None, *,
                     allow_numpy: bool = False) -> Any:
    """mmcv's ``_load_checkpoint``: what a checkpoint holds, without loading it into a model.

    A checkpoint directory (or a ``latest`` file, or a ``.pth`` name whose directory exists)
    gives ``{'meta', 'state_dict'[, 'optimizer']}`` (see :func:`load_checkpoint`); a ``.pth``
    file gives what ``torch.load(weights_only=True)`` returns.

    Raises:
        CheckpointNotFoundError: nothing at ``filename``.
        NotACheckpointError: a URL or model-zoo name, or a file ``weights_only`` refuses.
        CheckpointError: an invalid checkpoint directory (see :func:`fsm_trainer.checkpoint.load_checkpoint`).
    """
    del logger
    from fsm_trainer.checkpoint import _follow_latest
    from fsm_trainer.checkpoint._weights import _torch_file

    path = _checkpoint_path(filename)
    if path.is_dir() or (not _torch_file(path) and _follow_latest(path) is not None):
        return _read_directory(path, map_location)
    return _read_pth(path, map_location, allow_numpy)


def _load_checkpoint_with_prefix(prefix: str, filename: str | Path, map_location: Any = None, *,
                                 allow_numpy: bool = False) -> dict[str, Any]:
    """The weights of a checkpoint under ``prefix`` (``'backbone.'``), with the prefix removed (mmcv's).

    Raises:
        CheckpointMismatchError: no key starts with ``prefix``.
    """
    checkpoint = _load_checkpoint(filename, map_location, allow_numpy=allow_numpy)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state_dict, Mapping):
        msg = f"{filename}: no state_dict found (got {type(state_dict).__name__})"
        raise NotACheckpointError(msg)
    if not prefix.endswith("."):
        prefix += "."
    out = {k[len(prefix):]: v for k, v in state_dict.items() if isinstance(k, str) and k.startswith(prefix)}
    if not out:
        msg = f"prefix={prefix!r}: no key of {filename} starts with it"
        raise CheckpointMismatchError(msg)
    return out


def load_checkpoint(model: nn.Module, filename: str | Path, map_location: Any = None, strict: bool = False,
                    logger: logging.Logger | None = None,
                    revise_keys: Sequence[tuple[str, str]] = ((r"^module\.", ""),), *,
                    allow_numpy: bool = False) -> Any:
    """Load weights into ``model`` from a checkpoint directory or an mmcv ``.pth`` file; return the checkpoint.

    ``filename`` is an fsm_trainer checkpoint directory (as :func:`save_checkpoint` and the
    runners write them; ``'work_dir/epoch_3.pth'`` reads ``work_dir/epoch_3`` when the file
    does not exist), a ``latest`` file, or a ``.pth`` file read with
    ``torch.load(weights_only=True)`` (never with ``weights_only=False``). The weights, each
    key rewritten by the ``(pattern, replacement)`` regular expressions of ``revise_keys`` in
    turn, go through :func:`load_state_dict`.

    Args:
        model: the module to load into (a wrapper is loaded through ``.module``).
        map_location: ``torch.load``'s for a ``.pth`` file; for a directory ``None`` (CPU), a
            device string or a ``torch.device``.
        strict: refuse missing, unexpected or differently shaped keys.
        logger: where the mismatch message goes (the ``fsm_trainer`` logger when ``None``).
        revise_keys: by default, a leading ``module.`` is removed.
        allow_numpy: let a ``.pth`` file hold NumPy scalars and dtypes (mmcv's runners write
            them in ``meta``); only for files whose origin you trust.

    Returns:
        A ``.pth`` file: its content, as mmcv. A directory: ``{'meta': ..., 'state_dict': ...,
        'optimizer': ...}``: ``meta`` is the ``meta`` it was saved with (JSON values: tuples
        come back as lists), plus, for checkpoints written by a run, ``epoch`` and ``iter``
        (the counters the run continues from, as mmcv's runners record them) unless ``meta``
        has them; ``state_dict`` the weights as saved (before ``revise_keys``); ``optimizer``
        the ``Optimizer.state_dict()`` (a dict of them for a dict of optimizers), only when
        one was saved.

    Raises:
        CheckpointNotFoundError: nothing at ``filename``.
        NotACheckpointError: a URL, a file ``weights_only`` refuses, or no state dict in it.
        StateDictMismatchError: with ``strict``, the weights do not match the model.
        CheckpointError: an invalid checkpoint directory.
    """
    checkpoint = _load_checkpoint(filename, map_location, logger, allow_numpy=allow_numpy)
    if not isinstance(checkpoint, dict):
        msg = f"{filename}: no state_dict found in the checkpoint (it holds a {type(checkpoint).__name__})"
        raise NotACheckpointError(msg)
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, Mapping):
        msg = f"{filename}: its 'state_dict' is a {type(state_dict).__name__}, not a mapping of names to tensors"
        raise NotACheckpointError(msg)
    metadata = getattr(state_dict, "_metadata", OrderedDict())
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, replacement, k), v) for k, v in state_dict.items())
    revised: Any = state_dict
    revised._metadata = metadata
    load_state_dict(model, revised, strict, logger)
    return checkpoint


def _checked_meta(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        msg = f"meta must be a dict or None, but got {type(meta).__name__}"
        raise CheckpointArgumentError(msg)
    return dict(meta)


def _counter(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def save_checkpoint(model: nn.Module, filename: str | Path, optimizer: Any = None,
                    meta: dict[str, Any] | None = None) -> Path:
    """mmcv's ``save_checkpoint``, writing an fsm_trainer checkpoint directory; returns its path.

    The directory is ``filename`` without a ``.pth``/``.pt``/``.ckpt`` suffix (its name must
    be letters, digits, ``_`` or ``-``); an existing checkpoint of that name is replaced
    atomically, ``latest`` is left alone. It holds the model's weights (a wrapper is saved
    through ``.module``; the persistent buffers only, as ``model.state_dict()``), the
    optimizer's state (an ``Optimizer``, or a dict of them) and ``meta`` (stored as JSON:
    values JSON cannot hold are stored as their ``str``), to which ``CLASSES`` is added when
    the model has it, as mmcv does. See the module docstring for the run state it records.

    Raises:
        CheckpointArgumentError: ``meta`` is not a dict or ``None``.
        CheckpointWriteError: an I/O error; a previous checkpoint of that name is intact.
        MmcvCheckpointNameError: the directory name has other characters.
    """
    from fsm_trainer.checkpoint import save_checkpoint as write
    from fsm_trainer.checkpoint._layout import _NAME, LATEST
    from fsm_trainer.state import TrainState
    from fsm_trainer.transitions import compile_workflow

    info = _checked_meta(meta)
    model = _unwrap(model)
    if getattr(model, "CLASSES", None) is not None:
        info["CLASSES"] = model.CLASSES
    path = Path(filename).expanduser()
    name = path.name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if not _NAME.match(name) or name == LATEST:
        msg = (f"filename={str(filename)!r}: the checkpoint directory name {name!r} must be letters, digits, "
               f"'_' or '-' (and not {LATEST!r})")
        raise MmcvCheckpointNameError(msg)
    destination: Any = OrderedDict()
    destination._metadata = OrderedDict()
    weights = weights_to_cpu(_collect(model, destination, "", False, persistent_only=True))
    opt_state: Any = None
    if isinstance(optimizer, torch.optim.Optimizer):
        opt_state = optimizer.state_dict()
    elif isinstance(optimizer, dict):
        opt_state = {k: o.state_dict() for k, o in optimizer.items()}
    epoch, it = _counter(info, "epoch"), _counter(info, "iter")
    return write(path.parent, name, state=TrainState(epoch=epoch, iter=it),
                 table=compile_workflow([("train", 1)], max_epochs=max(1, epoch)), model=weights,
                 optimizer=opt_state, meta=info, update_latest=False)


__all__ = [
    "CheckpointArgumentError",
    "MmcvCheckpointNameError",
    "StateDictMismatchError",
    "_load_checkpoint",
    "_load_checkpoint_with_prefix",
    "get_state_dict",
    "load_checkpoint",
    "load_state_dict",
    "save_checkpoint",
    "weights_to_cpu",
]
