"""The format: the manifest and its verification, and :func:`load_checkpoint` into a :class:`Checkpoint`."""

from __future__ import annotations

import mmap
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from fsm_trainer.checkpoint import _validate
from fsm_trainer.checkpoint._codec import decode
from fsm_trainer.checkpoint._discovery import _follow_latest, _or_displaced
from fsm_trainer.checkpoint._errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NotACheckpointError,
    _read_error,
)
from fsm_trainer.checkpoint._layout import (
    _HASHERS,
    CHECKSUMS,
    MANIFEST,
    MAX_INT,
    MAX_MANIFEST_BYTES,
    STATE_FILE,
    TENSOR_FILE,
    _canonical,
    _json,
)
from fsm_trainer.checkpoint._safetensors import _read_safetensors
from fsm_trainer.state import TrainState
from fsm_trainer.transitions import TransitionTable

PAYLOAD_KEYS = frozenset({"state", "table", "model", "optimizer", "hooks", "rng", "data", "log_buffer", "meta"})
"""The keys of ``state.json``."""


@attrs.frozen
class Checkpoint:
    """A verified checkpoint, loaded: plain data and CPU tensors."""

    path: Path
    state: TrainState
    table: TransitionTable
    model: dict[str, torch.Tensor]
    optimizer: Any
    hooks: dict[str, Any]
    rng: dict[str, Any] | None
    data: dict[str, Any]
    log_buffer: dict[str, Any] | None
    meta: dict[str, Any]


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "a PyTorch zip archive (torch.save), which holds a pickle"
    if head[:1] == b"\x80":
        return "a pickle"
    return "not an fsm_trainer checkpoint directory"


def _not_a_checkpoint(path: Path) -> NotACheckpointError:
    what = _sniff(path)
    return NotACheckpointError(
        f"{path} is a file ({what}), not an fsm_trainer checkpoint: a checkpoint is a directory with "
        f"{MANIFEST}. fsm_trainer never unpickles checkpoints; to import the weights of a .pth file "
        "into a model, use fsm_trainer.checkpoint.load_weights(model, path), which loads with "
        "torch.load(weights_only=True)"
    )


def _read_manifest(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST
    if not mpath.exists():
        msg = f"{path}: no {MANIFEST}, so this is not a committed fsm_trainer checkpoint"
        raise NotACheckpointError(msg) if path.is_dir() else CheckpointNotFoundError(msg)
    try:
        too_big = mpath.stat().st_size > MAX_MANIFEST_BYTES
        raw = b"" if too_big else mpath.read_bytes()
    except OSError as exc:
        raise _read_error(mpath, exc) from exc
    if too_big:
        msg = f"{mpath}: larger than {MAX_MANIFEST_BYTES} bytes"
        raise CorruptCheckpointError(msg)
    manifest = _json(raw, str(mpath))
    fmt = manifest.get("format") if isinstance(manifest, dict) else None
    if not isinstance(fmt, str) or fmt not in CHECKSUMS:
        known = ", ".join(map(repr, CHECKSUMS))
        msg = f"{mpath}: format {fmt!r:.60} is not one of {known} (written by another fsm_trainer version?)"
        raise CorruptCheckpointError(msg)
    algo = CHECKSUMS[fmt]
    if set(manifest) != {"format", "files", "order", algo}:
        msg = f"{mpath}: expected the keys format, files, order, {algo}"
        raise CorruptCheckpointError(msg)
    body = {k: v for k, v in manifest.items() if k != algo}
    try:
        canonical = _canonical(manifest)
        ok = canonical == raw and _HASHERS[algo](_canonical(body)).hexdigest() == manifest[algo]
    except ValueError:
        ok = False
    if not ok:
        msg = f"{mpath}: its checksum does not match its content (the manifest was altered)"
        raise CorruptCheckpointError(msg)
    files = manifest["files"]
    if not isinstance(files, dict) or set(files) != {STATE_FILE, TENSOR_FILE}:
        msg = f"{mpath}: 'files' must list exactly {STATE_FILE} and {TENSOR_FILE}"
        raise CorruptCheckpointError(msg)
    for fname, info in files.items():
        if (not isinstance(info, dict) or set(info) != {"bytes", algo} or not isinstance(info["bytes"], int)
                or isinstance(info["bytes"], bool) or not isinstance(info[algo], str)):
            msg = f"{mpath}: entry for {fname} is malformed"
            raise CorruptCheckpointError(msg)
    order = manifest["order"]
    if not isinstance(order, list) or not 1 <= len(order) <= 8 or not all(
        isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_INT for x in order
    ):
        msg = f"{mpath}: 'order' must be a list of ints in [0, 2**63)"
        raise CorruptCheckpointError(msg)
    checked: dict[str, Any] = manifest
    return checked


def _open_verified(path: Path, info: Mapping[str, Any], *, checksum: bool = True) -> Any:
    """A private mmap (or bytes, for an empty file) of ``path`` after its size and checksum check.

    Hashing the mapping also faults its pages in, so the copy into the model that follows runs
    at memory speed: verification costs about the hash alone.
    """
    if not path.exists():
        msg = f"{path}: missing"
        raise CorruptCheckpointError(msg)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size != info["bytes"]:
                msg = f"{path}: {size} bytes, the manifest says {info['bytes']} (truncated or replaced)"
                raise CorruptCheckpointError(msg)
            buf: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size else b""
    except OSError as exc:
        raise _read_error(path, exc) from exc
    algo = "xxh3_128" if "xxh3_128" in info else "sha256"
    if checksum and _HASHERS[algo](buf).hexdigest() != info[algo]:
        msg = f"{path}: checksum ({algo}) does not match the manifest (the file was altered or corrupted)"
        raise CorruptCheckpointError(msg)
    return buf


def verify(path: str | Path) -> None:
    """Check a checkpoint's manifest and checksums without building anything.

    Raises:
        CheckpointError: as :func:`load_checkpoint`.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    for fname, info in manifest["files"].items():
        _open_verified(path / fname, info)


def load_checkpoint(path: str | Path, *, checksum: bool = True) -> Checkpoint:
    """Load and verify the checkpoint at ``path`` (a checkpoint directory or a ``latest`` file).

    ``checksum=False`` skips hashing the tensor file (its size, the manifest's own checksum, the
    state file's checksum and every parsing rule are still checked): one pass over memory less,
    for inspecting large checkpoints one trusts; a flipped byte in a tensor then goes unnoticed.

    Beyond checksums, the content must make sense (:mod:`fsm_trainer.checkpoint._validate`):
    nesting at most 64 deep, every field of the state and table present and of its type, the
    position inside the saved run, a table equal to its compiled workflow, and data position,
    RNG states and log buffer of the layout the writer gives them.

    Raises:
        CheckpointNotFoundError: nothing at ``path``.
        NotACheckpointError: ``path`` is some other file (a pickle is refused, never opened
            with pickle).
        CorruptCheckpointError: a size, checksum, format, schema or range check failed.
        CheckpointError: a file is there but cannot be read (the ``OSError`` is its ``__cause__``).
    """
    path = _or_displaced(Path(path))
    if not path.exists():
        msg = f"no checkpoint at {path}: no such file or directory"
        raise CheckpointNotFoundError(msg)
    if path.is_file():
        target = _follow_latest(path)
        if target is None:
            raise _not_a_checkpoint(path)
        path = _or_displaced(target)
    manifest = _read_manifest(path)
    files = manifest["files"]
    spath = path / STATE_FILE
    state_raw = _open_verified(spath, files[STATE_FILE])
    tensor_buf = _open_verified(path / TENSOR_FILE, files[TENSOR_FILE], checksum=checksum)
    tensors = _read_safetensors(tensor_buf, path / TENSOR_FILE)
    payload = _json(state_raw, str(spath))
    if not isinstance(payload, dict) or set(payload) != PAYLOAD_KEYS:
        msg = f"{spath}: expected the keys {sorted(PAYLOAD_KEYS)}"
        raise CorruptCheckpointError(msg)
    state, table = _validate.structure_position(payload["state"], payload["table"], spath)
    _validate.check_order(manifest["order"], state, path / MANIFEST)

    def part(key: str) -> Any:
        try:
            return decode(payload[key], tensors)
        except CorruptCheckpointError as exc:
            msg = f"{spath}: '{key}': {exc}"
            raise CorruptCheckpointError(msg) from exc

    model = part("model")
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        msg = f"{spath}: 'model' must map names to tensors"
        raise CorruptCheckpointError(msg)
    data, rng, log_buffer = part("data"), part("rng"), part("log_buffer")
    _validate.check_data(data, state, table, spath)
    _validate.check_rng(rng, spath)
    _validate.check_log_buffer(log_buffer, spath)
    hooks = dict(_validate.check_hooks(part("hooks"), spath))
    return Checkpoint(
        path, state, table, model, part("optimizer"), hooks, rng, data, log_buffer,
        payload["meta"] if isinstance(payload["meta"], dict) else {},
    )
