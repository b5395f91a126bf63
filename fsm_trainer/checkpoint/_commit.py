"""Atomic commit: a checkpoint is written beside its target and renamed into place, then ``latest``.

Fault points: the writer calls a fault hook at named points (``mid_tensors``,
``before_manifest``, ``before_rename``, ``between_renames``, ``after_rename``,
``before_latest``; the checkpoint hook adds ``before_rotate``). :func:`save_checkpoint` takes
one as its ``faults`` argument; by default the points go to :data:`FAULTS`, whose ``hook``
tests set. The ``FSM_TRAINER_CKPT_FAULT`` environment variable (``"<point>[:<n>]"``) is read
once, when this module is imported, to install a hook that SIGKILLs the process the n-th
time ``<point>`` is reached: that is how subprocess tests crash a writer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from fsm_trainer.checkpoint._codec import encode
from fsm_trainer.checkpoint._durable import _fsync_dir
from fsm_trainer.checkpoint._errors import CheckpointWriteError
from fsm_trainer.checkpoint._layout import (
    _HASHERS,
    CHECKSUMS,
    FORMAT,
    LATEST,
    MANIFEST,
    STATE_FILE,
    TENSOR_FILE,
    _canonical,
    _check_name,
)
from fsm_trainer.checkpoint._safetensors import _check_dtypes, _Digest, _write_safetensors
from fsm_trainer.serialize import unstructure
from fsm_trainer.state import TrainState
from fsm_trainer.transitions import TransitionTable

FaultHook = Callable[[str], None]
"""Called with the name of each fault point the writer reaches; it may raise or kill the process."""
FAULT_ENV = "FSM_TRAINER_CKPT_FAULT"
"""Test-only: ``"<point>[:<n>]"`` installs, at import, a hook that SIGKILLs the process the n-th
time the writer reaches ``<point>`` (see :func:`kill_at`)."""

_log = logging.getLogger("fsm_trainer")


class FaultInjector:
    """The default fault hook of the writer: calls :attr:`hook` (``None``: nothing) at each point."""

    def __init__(self) -> None:
        self.hook: FaultHook | None = None

    def __call__(self, point: str) -> None:
        hook = self.hook
        if hook is not None:
            hook(point)


FAULTS = FaultInjector()
"""Where tests install a fault hook for every write that is not given its own ``faults``."""


def _fault(point: str) -> None:
    """Report reaching fault point ``point`` to :data:`FAULTS`."""
    FAULTS(point)


def kill_at(spec: str) -> FaultHook:
    """A fault hook that SIGKILLs this process the n-th time the writer reaches a point.

    ``spec`` is ``"<point>"`` or ``"<point>:<n>"`` (n defaults to 1).
    """
    name, _, nth = spec.partition(":")
    target = int(nth or 1)
    seen = [0]

    def hook(point: str) -> None:
        if point == name:
            seen[0] += 1
            if seen[0] == target:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _install_from_env() -> None:
    spec = os.environ.get(FAULT_ENV)
    if spec:
        FAULTS.hook = kill_at(spec)


def _write_file(path: Path, write: Callable[[Any, _Digest], None]) -> dict[str, Any]:
    digest = _Digest()
    with open(path, "xb") as f:
        write(f, digest)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    return {"bytes": size, digest.algo: digest.hexdigest()}


def _why(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def save_checkpoint(
    directory: str | Path,
    name: str,
    *,
    state: TrainState,
    table: TransitionTable,
    model: Mapping[str, torch.Tensor] | None = None,
    optimizer: Any = None,
    hooks: Mapping[str, Any] | None = None,
    rng: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    log_buffer: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    update_latest: bool = True,
    faults: FaultHook | None = None,
) -> Path:
    """Write checkpoint ``directory/name`` atomically and return its path.

    Args:
        directory: where checkpoints live (created if missing).
        name: the checkpoint directory's name, e.g. ``"epoch_3"``.
        state: where the run is: the state to *continue* from.
        table: the run's transition table.
        model: the model's ``state_dict()``.
        optimizer: the optimizer's ``state_dict()`` (``None``: not saved).
        hooks: hook name -> the hook's ``state_dict()``.
        rng: :func:`fsm_trainer.rng.capture` output.
        data: the data position (see :mod:`fsm_trainer.runner`).
        log_buffer: the log buffer's averages, to resume logging exactly.
        meta: free-form provenance (config...); stored as data, never executed.
        update_latest: replace the ``latest`` pointer once the checkpoint is committed.
        faults: the fault hook of this write (default :data:`FAULTS`).

    Raises:
        CheckpointWriteError: on any I/O error (disk full, file too large, read-only or
            forbidden directory...), naming the path; the temporary directory is removed and
            every previous checkpoint is left as it was.
        ArgumentTypeError: a state_dict holds a value the codec cannot store (a ``TypeError``).
        CheckpointError: ``name`` is not a valid checkpoint name.
    """
    fault = faults or FAULTS
    directory = Path(directory)
    _check_name(name)
    final = directory / name
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[Any, str] = {}
    from fsm_trainer import __version__

    payload = {
        "state": unstructure(state),
        "table": unstructure(table),
        "model": encode(dict(model or {}), "model", tensors, seen),
        "optimizer": encode(optimizer, "optimizer", tensors, seen),
        "hooks": encode(dict(hooks or {}), "hooks", tensors, seen),
        "rng": encode(rng, "rng", tensors, seen),
        "data": encode(dict(data or {}), "data", tensors, seen),
        "log_buffer": encode(log_buffer, "log_buffer", tensors, seen),
        "meta": {
            "fsm_trainer": __version__, "torch": torch.__version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": json.loads(json.dumps(dict(meta or {}), default=str)),
        },
    }
    _check_dtypes(tensors)
    state_bytes = json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()
    tmp = directory / f"{name}.tmp-{uuid.uuid4().hex[:12]}"
    old: Path | None = None
    committed = False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        files = {TENSOR_FILE: _write_file(tmp / TENSOR_FILE, lambda f, d: _write_safetensors(f, tensors, d, fault))}

        def write_state(f: Any, d: _Digest) -> None:
            f.write(state_bytes)
            d.update(state_bytes)

        files[STATE_FILE] = _write_file(tmp / STATE_FILE, write_state)
        fault("before_manifest")
        body = {"format": FORMAT, "files": files,
                "order": [state.iter, state.epoch, state.inner_iter, time.time_ns()]}
        algo = CHECKSUMS[FORMAT]
        manifest = {**body, algo: _HASHERS[algo](_canonical(body)).hexdigest()}
        raw = _canonical(manifest)
        _write_file(tmp / MANIFEST, lambda f, d: f.write(raw))
        _fsync_dir(tmp)
        fault("before_rename")
        if final.exists():
            old = directory / f"{name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(final, old)
            fault("between_renames")
        os.replace(tmp, final)
        committed = True
        _fsync_dir(directory)
        fault("after_rename")
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            old = None
        if update_latest:
            _replace_latest(directory, name, fault)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            try:  # the new one could not take its place: put the committed one back
                os.replace(old, final)
            except OSError:
                _log.warning("could not move %s back to %s; the next start restores it", old, final)
        if committed:
            msg = (f"checkpoint {final} was written, but {directory / LATEST} could not be updated: {_why(exc)}; "
                   f"the checkpoints in {directory} are intact")
        else:
            msg = f"could not write checkpoint {final}: {_why(exc)}; the previous checkpoints in {directory} are intact"
        raise CheckpointWriteError(exc.errno or 0, msg) from exc
    return final


def _replace_latest(directory: Path, name: str, fault: FaultHook) -> None:
    tmp = directory / f"{LATEST}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open(tmp, "xb") as f:
            f.write((name + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        fault("before_latest")
        os.replace(tmp, directory / LATEST)
        _fsync_dir(directory)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_latest(directory: str | Path, name: str, *, faults: FaultHook | None = None) -> None:
    """Point ``directory/latest`` at checkpoint ``name``, atomically.

    Raises:
        CheckpointWriteError: an I/O error; the previous ``latest`` is left as it was.
    """
    directory = Path(directory)
    _check_name(name)
    try:
        _replace_latest(directory, name, faults or FAULTS)
    except OSError as exc:
        msg = f"could not update {directory / LATEST}: {_why(exc)}; it still names the previous checkpoint"
        raise CheckpointWriteError(exc.errno or 0, msg) from exc


def remove_checkpoint(path: str | Path, *, strict: bool = False, logger: logging.Logger | None = None) -> bool:
    """Delete a checkpoint: rename it out of sight (atomic), remove its manifest, then the rest.

    Retention must not stop a run: when the checkpoint cannot be removed (a read-only
    directory, a file the process may not delete...), it is left whole under its name, the
    failure is logged as a warning and ``False`` returned. Files that remain once the
    manifest is gone are no checkpoint any more; :func:`cleanup_stale` removes them later.

    Args:
        strict: raise instead of warning.

    Returns:
        Whether the checkpoint is gone.

    Raises:
        CheckpointWriteError: with ``strict``, naming the path (the checkpoint is intact).
    """
    path = Path(path)
    trash = path.with_name(f"{path.name}.deleting-{uuid.uuid4().hex[:12]}")
    try:
        os.replace(path, trash)
    except OSError as exc:
        return _not_removed(path, exc, strict, logger)
    try:
        (trash / MANIFEST).unlink(missing_ok=True)
    except OSError as exc:
        try:
            os.replace(trash, path)
        except OSError:
            (logger or _log).warning("could not move %s back to %s", trash, path)
        return _not_removed(path, exc, strict, logger)
    shutil.rmtree(trash, ignore_errors=True)
    if os.path.lexists(trash):
        (logger or _log).warning("could not remove every file of %s; the next start removes %s", path, trash.name)
    return True


def _not_removed(path: Path, exc: OSError, strict: bool, logger: logging.Logger | None) -> bool:
    msg = f"could not remove checkpoint {path}: {_why(exc)}; it is left as it was"
    if strict:
        raise CheckpointWriteError(exc.errno or 0, msg) from exc
    (logger or _log).warning("%s", msg)
    return False


_install_from_env()
