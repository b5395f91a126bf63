"""Checkpoints: safetensors + JSON, written atomically, verified by checksums, never unpickled.

A checkpoint is a directory, committed by one rename::

    <out_dir>/
      epoch_3/                  # or iter_1200/: the name says what completed
        tensors.safetensors     # every tensor: model, optimizer, hook tensors, RNG byte states
        state.json              # TrainState, transition table, data position, python/numpy RNG,
                                # optimizer and hook state without their tensors, metadata
        manifest.json           # format, size and XXH3-128 of the two files, its own XXH3-128
      latest                    # text file naming the newest checkpoint (advisory)

Rules of the writer (:func:`save_checkpoint`): everything is written into
``<name>.tmp-<random>/`` next to the target, each file is fsynced, the manifest is written last,
the directory is renamed to ``<name>``, and the parent directory is fsynced. Only then is
``latest`` replaced (write a temporary file, fsync, rename). Old checkpoints are removed only
after that (:func:`remove_checkpoint`). A crash at any moment leaves every committed
checkpoint intact and at most a ``*.tmp-*`` directory, which is never read and is cleaned by
:func:`cleanup_stale`. Overwriting a checkpoint of the same name takes two renames (the old
one to ``<name>.old-<random>``, then the new one into place); a crash between them leaves the
old one displaced but whole: the readers use it as ``<name>`` and :func:`cleanup_stale` moves
it back before anything else.

Rules of the reader (:func:`load_checkpoint`): the manifest must be canonical JSON whose own
hash matches, of a known ``format``; each file must have the recorded size and checksum; the
tensor file is parsed with safetensors' rules (bounded header, contiguous offsets, dtype times
shape equal to the byte length); the state is structured strictly by cattrs. Any failure raises
a :class:`CheckpointError` naming the file and the check. No pickle is involved anywhere; the
only ``torch.load`` in fsm_trainer is :func:`load_weights`, for ``.pth`` files, with
``weights_only=True``.

Structured values (optimizer and hook states) are stored by a small tagged codec: tensors are
replaced by ``{"__tensor__": key}``, tuples by ``{"__tuple__": [...]}`` and dicts whose keys
are not plain strings by ``{"__dict__": [[key, value], ...]}``; everything else must be
``None``, a bool, an int, a float, a string, a list or a dict.

>>> from fsm_trainer.checkpoint import decode, encode
>>> import torch
>>> tensors = {}
>>> plain = encode({"step": 3, "betas": (0.9, 0.99), "state": {0: torch.ones(2)}}, "opt", tensors)
>>> plain["state"], sorted(tensors)
({'__dict__': [[0, {'__tensor__': 'opt/state/0'}]]}, ['opt/state/0'])
>>> decode(plain, tensors)["betas"]
(0.9, 0.99)
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import signal
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import xxhash

from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.serialize import StateFormatError, structure, unstructure
from fsm_trainer.state import TrainState
from fsm_trainer.transitions import TransitionTable

FORMAT = "fsm_trainer.checkpoint/2"
"""The ``format`` written in every manifest; a reader refuses any value not in :data:`CHECKSUMS`."""
CHECKSUMS: dict[str, str] = {"fsm_trainer.checkpoint/1": "sha256", "fsm_trainer.checkpoint/2": "xxh3_128"}
"""Format -> the checksum its manifest records. Format 2 uses XXH3-128 (about 13 GB/s on one
core, 10x sha256), so verifying every byte costs little next to reading it; format 1
checkpoints (sha256) are still read."""
_HASHERS: dict[str, Callable[..., Any]] = {"sha256": hashlib.sha256, "xxh3_128": xxhash.xxh3_128}
MANIFEST = "manifest.json"
STATE_FILE = "state.json"
TENSOR_FILE = "tensors.safetensors"
LATEST = "latest"
MAX_MANIFEST_BYTES = 1 << 20
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
FAULT_ENV = "FSM_TRAINER_CKPT_FAULT"
"""Test-only fault injection: ``"<point>[:<n>]"`` SIGKILLs the process the n-th time the writer
reaches ``<point>`` (``mid_tensors``, ``before_manifest``, ``before_rename``, ``between_renames``,
``after_rename``, ``before_latest``, ``before_rotate``)."""

_log = logging.getLogger("fsm_trainer")
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_STALE = re.compile(r"\.(tmp|old|deleting)-[0-9a-f]+$")
_DISPLACED = re.compile(r"^([A-Za-z0-9_\-]+)\.old-[0-9a-f]+$")


class CheckpointError(FsmTrainerError, ValueError):
    """A checkpoint cannot be used; the message names the path and the failed check."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The path given to load or resume from does not exist."""


class NotACheckpointError(CheckpointError):
    """The path is not an fsm_trainer checkpoint (for instance a pickle file)."""


class CorruptCheckpointError(CheckpointError):
    """A file is missing, truncated, altered, or not valid for its format."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's model does not fit the model it is loaded into."""


class CheckpointWriteError(FsmTrainerError, OSError):
    """Writing a checkpoint failed (disk full, permissions...); previous checkpoints are intact."""


# --------------------------------------------------------------------------- tagged codec


def encode(obj: Any, path: str, tensors: dict[str, torch.Tensor], _seen: dict[Any, str] | None = None) -> Any:
    """Plain JSON data for ``obj``; its tensors are added to ``tensors`` under keys from ``path``.

    A tensor met twice (same storage, offset, shape, strides, dtype: tied weights) is stored once.

    Raises:
        TypeError: naming the path of a value that is not data (a module, a function...).
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
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, f"{path}/{i}", tensors, seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, f"{path}/{i}", tensors, seen) for i, v in enumerate(obj)]
    msg = (
        f"cannot store a {type(obj).__name__} at {path!r} in a checkpoint: state_dicts may hold "
        "None, bools, numbers, strings, lists, tuples, dicts, tensors and NumPy arrays"
    )
    raise TypeError(msg)


def decode(data: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode`.

    Raises:
        CorruptCheckpointError: a tensor reference is unknown or a tag is malformed.
    """
    if isinstance(data, list):
        return [decode(v, tensors) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        ((tag, value),) = data.items()
        if tag == "__tensor__":
            if not isinstance(value, str) or value not in tensors:
                msg = f"reference to a tensor {value!r} that is not in {TENSOR_FILE}"
                raise CorruptCheckpointError(msg)
            return tensors[value]
        if tag == "__ndarray__":
            return decode(value, tensors).numpy()
        if tag == "__tuple__" and isinstance(value, list):
            return tuple(decode(v, tensors) for v in value)
        if tag == "__dict__" and isinstance(value, list):
            out = {}
            for pair in value:
                if not isinstance(pair, list) or len(pair) != 2:
                    msg = f"malformed __dict__ entry {pair!r:.80}"
                    raise CorruptCheckpointError(msg)
                key = decode(pair[0], tensors)
                if isinstance(key, (dict, list, torch.Tensor)):
                    msg = f"unhashable dict key {pair[0]!r:.80}"
                    raise CorruptCheckpointError(msg)
                out[key] = decode(pair[1], tensors)
            return out
    for k in data:
        if k.startswith("__"):
            msg = f"unknown tag {k!r}"
            raise CorruptCheckpointError(msg)
    return {k: decode(v, tensors) for k, v in data.items()}


# --------------------------------------------------------------------------- safetensors I/O

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}
_CODES = {v: k for k, v in _DTYPES.items()}


class _Digest:
    """The checksum of a stream of buffers (XXH3-128 outruns the disk, so it is computed inline)."""

    def __init__(self, algo: str = "xxh3_128") -> None:
        self.algo = algo
        self.h = _HASHERS[algo]()

    def update(self, buf: memoryview | bytes) -> None:
        self.h.update(buf)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _raw(t: torch.Tensor) -> memoryview:
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def _write_safetensors(f: Any, tensors: Mapping[str, torch.Tensor], digest: _Digest) -> None:
    items = []
    for name, t in tensors.items():
        if t.dtype not in _DTYPES:
            msg = f"cannot store tensor {name!r} of dtype {t.dtype} in safetensors"
            raise TypeError(msg)
        items.append((name, t))
    # Largest element size first keeps every tensor aligned to its element size.
    items.sort(key=lambda p: (-p[1].element_size(), p[0]))
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, t in items:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    for buf in (struct.pack("<Q", len(head)), head):
        f.write(buf)
        digest.update(buf)
    for i, (_, t) in enumerate(items):
        buf = _raw(t)
        f.write(buf)
        digest.update(buf)
        if i == len(items) // 2:
            _fault("mid_tensors")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            msg = f"duplicate key {k!r}"
            raise ValueError(msg)
        out[k] = v
    return out


def _json(raw: bytes | memoryview, what: str) -> Any:
    try:
        return json.loads(bytes(raw), object_pairs_hook=_no_dupes)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        msg = f"{what}: not valid JSON ({exc})"
        raise CorruptCheckpointError(msg) from None


def _read_safetensors(buf: Any, path: Path) -> dict[str, torch.Tensor]:
    """Tensors viewing ``buf`` (a private mmap), after safetensors' validity checks."""
    size = len(buf)

    def bad(why: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"{path}: invalid safetensors file: {why}")

    if size < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise bad(f"header length {n} exceeds the file ({size} bytes) or the limit")
    header = _json(buf[8 : 8 + n], f"{path} header")
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    header.pop("__metadata__", None)
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {name!r} is malformed")
        dtype = _CODES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
        shape, offs = info["shape"], info["data_offsets"]
        if dtype is None:
            raise bad(f"entry {name!r} has unknown dtype {info['dtype']!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise bad(f"entry {name!r} has an invalid shape {shape!r:.80}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs) or not 0 <= offs[0] <= offs[1]):
            raise bad(f"entry {name!r} has invalid data_offsets {offs!r:.80}")
        numel = 1
        for d in shape:
            numel *= d
        if numel * dtype.itemsize != offs[1] - offs[0]:
            raise bad(f"entry {name!r}: {numel} x {dtype} does not fill bytes {offs}")
        spans.append((offs[0], offs[1], name, dtype, shape))
    spans.sort()
    pos = 0
    for b, e, name, _, _ in spans:
        if b != pos:
            raise bad(f"entry {name!r} starts at {b}, expected {pos} (gap or overlap)")
        pos = e
    if 8 + n + pos != size:
        raise bad(f"data is {size - 8 - n} bytes, the header describes {pos}")
    base = 8 + n
    out = {}
    for b, e, name, dtype, shape in spans:
        if e == b:
            out[name] = torch.empty(shape, dtype=dtype)
            continue
        raw = torch.frombuffer(buf, dtype=torch.uint8, count=e - b, offset=base + b)
        if (base + b) % dtype.itemsize:
            raw = raw.clone()
        out[name] = raw.view(dtype).reshape(shape)
    return out


# --------------------------------------------------------------------------- atomic writing

_fault_counts: Counter[str] = Counter()


def _fault(point: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _fault_counts[point] += 1
    if _fault_counts[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _write_file(path: Path, write: Callable[[Any, _Digest], None]) -> dict[str, Any]:
    digest = _Digest()
    with open(path, "xb") as f:
        write(f, digest)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    return {"bytes": size, digest.algo: digest.hexdigest()}


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name == LATEST:
        msg = f"checkpoint name {name!r} must be letters, digits, '_' or '-' (and not {LATEST!r})"
        raise ValueError(msg)


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
) -> Path:
    """Write checkpoint ``directory/name`` atomically and return its path.

    Args:
        directory: where checkpoints live (created if missing).
        name: the checkpoint directory's name, e.g. ``"epoch_3"``.
        state, table: where the run is; ``state`` must be the state to *continue* from.
        model: the model's ``state_dict()``.
        optimizer: the optimizer's ``state_dict()`` (``None``: not saved).
        hooks: hook name -> the hook's ``state_dict()``.
        rng: :func:`fsm_trainer.rng.capture` output.
        data: the data position (see :mod:`fsm_trainer.runner`).
        log_buffer: the log buffer's averages, to resume logging exactly.
        meta: free-form provenance (config...); stored as data, never executed.
        update_latest: replace the ``latest`` pointer once the checkpoint is committed.

    Raises:
        CheckpointWriteError: on any I/O error (disk full...), naming the path; the temporary
            directory is removed and every previous checkpoint is left as it was.
        TypeError: a state_dict holds a value the codec cannot store.
    """
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
    state_bytes = json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()
    tmp = directory / f"{name}.tmp-{uuid.uuid4().hex[:12]}"
    old: Path | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        files = {TENSOR_FILE: _write_file(tmp / TENSOR_FILE, lambda f, d: _write_safetensors(f, tensors, d))}

        def write_state(f: Any, d: _Digest) -> None:
            f.write(state_bytes)
            d.update(state_bytes)

        files[STATE_FILE] = _write_file(tmp / STATE_FILE, write_state)
        _fault("before_manifest")
        body = {"format": FORMAT, "files": files,
                "order": [state.iter, state.epoch, state.inner_iter, time.time_ns()]}
        algo = CHECKSUMS[FORMAT]
        manifest = {**body, algo: _HASHERS[algo](_canonical(body)).hexdigest()}
        raw = _canonical(manifest)
        _write_file(tmp / MANIFEST, lambda f, d: f.write(raw))
        _fsync_dir(tmp)
        _fault("before_rename")
        if final.exists():
            old = directory / f"{name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(final, old)
            _fault("between_renames")
        os.replace(tmp, final)
        _fsync_dir(directory)
        _fault("after_rename")
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            old = None
        if update_latest:
            write_latest(directory, name)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            try:  # the new one could not take its place: put the committed one back
                os.replace(old, final)
            except OSError:
                _log.warning("could not move %s back to %s; the next start restores it", old, final)
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        msg = f"could not write checkpoint {final}: {why}; the previous checkpoints in {directory} are intact"
        raise CheckpointWriteError(exc.errno or 0, msg) from exc
    return final


def write_latest(directory: str | Path, name: str) -> None:
    """Point ``directory/latest`` at checkpoint ``name``, atomically."""
    directory = Path(directory)
    tmp = directory / f"{LATEST}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with open(tmp, "xb") as f:
            f.write((name + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        _fault("before_latest")
        os.replace(tmp, directory / LATEST)
        _fsync_dir(directory)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_checkpoint(path: str | Path) -> None:
    """Delete a checkpoint: first rename it out of sight (atomic), then remove the files."""
    path = Path(path)
    trash = path.with_name(f"{path.name}.deleting-{uuid.uuid4().hex[:12]}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _order(path: Path) -> tuple[int, ...]:
    """The progress a checkpoint's manifest records (``(-1,)`` when it cannot be read); nothing is verified."""
    try:
        order = json.loads((path / MANIFEST).read_bytes()[:MAX_MANIFEST_BYTES])["order"]
        return tuple(int(x) for x in order)
    except (ValueError, KeyError, TypeError, OSError, RecursionError):
        return (-1,)


def _displaced(directory: Path) -> dict[str, Path]:
    """Checkpoint name -> its ``<name>.old-*`` copy, for the names with no ``<name>`` in ``directory``.

    Such a copy is a committed checkpoint moved aside by an overwrite that was interrupted
    before the new version took its place; it is the checkpoint of that name.
    """
    found: dict[str, list[Path]] = {}
    if not directory.is_dir():
        return {}
    for p in directory.iterdir():
        m = _DISPLACED.match(p.name)
        if m and m.group(1) != LATEST and p.is_dir() and not p.is_symlink() and (p / MANIFEST).is_file():
            found.setdefault(m.group(1), []).append(p)
    return {name: max(ps, key=lambda q: (_order(q), q.name)) for name, ps in found.items()
            if not os.path.lexists(directory / name)}


def cleanup_stale(directory: str | Path) -> list[Path]:
    """Repair what interrupted writes left in ``directory`` and return the paths removed.

    A committed checkpoint displaced by an interrupted overwrite (``<name>.old-*`` with no
    ``<name>``) is first renamed back to ``<name>``; then every ``*.tmp-*``, ``*.old-*`` and
    ``*.deleting-*`` is removed.
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    restored = False
    for name, p in _displaced(directory).items():
        os.replace(p, directory / name)
        restored = True
        _log.warning("restored checkpoint %s from %s, left by an interrupted overwrite", directory / name, p.name)
    if restored:
        _fsync_dir(directory)
    for p in directory.iterdir():
        if _STALE.search(p.name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def to_remove(names: Iterable[str], keep: int, prefix: str) -> list[str]:
    """The checkpoints ``<prefix><n>`` to delete so that the ``keep`` highest ``n`` remain.

    >>> to_remove(["epoch_1", "epoch_10", "epoch_2", "iter_7", "epoch_x"], 2, "epoch_")
    ['epoch_1']
    >>> to_remove(["epoch_1"], -1, "epoch_")
    []
    """
    if keep <= 0:
        return []
    pat = re.compile(re.escape(prefix) + r"(\d+)$")
    numbered = sorted((int(m.group(1)), n) for n in names if (m := pat.match(n)))
    return [n for _, n in numbered[:-keep]]


# --------------------------------------------------------------------------- loading


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
    if not mpath.is_file():
        msg = f"{path}: no {MANIFEST}, so this is not a committed fsm_trainer checkpoint"
        raise NotACheckpointError(msg) if path.is_dir() else CheckpointNotFoundError(msg)
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        msg = f"{mpath}: larger than {MAX_MANIFEST_BYTES} bytes"
        raise CorruptCheckpointError(msg)
    raw = mpath.read_bytes()
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
                or not isinstance(info[algo], str)):
            msg = f"{mpath}: entry for {fname} is malformed"
            raise CorruptCheckpointError(msg)
    return manifest


def _open_verified(path: Path, info: Mapping[str, Any], *, checksum: bool = True) -> Any:
    """A private mmap (or bytes, for an empty file) of ``path`` after its size and checksum check.

    Hashing the mapping also faults its pages in, so the copy into the model that follows runs
    at memory speed: verification costs about the hash alone.
    """
    if not path.is_file():
        msg = f"{path}: missing"
        raise CorruptCheckpointError(msg)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != info["bytes"]:
            msg = f"{path}: {size} bytes, the manifest says {info['bytes']} (truncated or replaced)"
            raise CorruptCheckpointError(msg)
        buf: Any = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size else b""
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

    Raises:
        CheckpointNotFoundError: nothing at ``path``.
        NotACheckpointError: ``path`` is some other file (a pickle is refused, never opened
            with pickle).
        CorruptCheckpointError: a size, checksum, format or schema check failed.
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
    state_raw = _open_verified(path / STATE_FILE, files[STATE_FILE])
    tensor_buf = _open_verified(path / TENSOR_FILE, files[TENSOR_FILE], checksum=checksum)
    tensors = _read_safetensors(tensor_buf, path / TENSOR_FILE)
    payload = _json(state_raw, str(path / STATE_FILE))
    keys = {"state", "table", "model", "optimizer", "hooks", "rng", "data", "log_buffer", "meta"}
    if not isinstance(payload, dict) or set(payload) != keys:
        msg = f"{path / STATE_FILE}: expected the keys {sorted(keys)}"
        raise CorruptCheckpointError(msg)
    try:
        state = structure(payload["state"], TrainState)
        table = structure(payload["table"], TransitionTable)
    except StateFormatError as exc:
        msg = f"{path / STATE_FILE}: {exc}"
        raise CorruptCheckpointError(msg) from None
    model = decode(payload["model"], tensors)
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        msg = f"{path / STATE_FILE}: 'model' must map names to tensors"
        raise CorruptCheckpointError(msg)
    return Checkpoint(
        path, state, table, model, decode(payload["optimizer"], tensors), decode(payload["hooks"], tensors),
        decode(payload["rng"], tensors), decode(payload["data"], tensors), decode(payload["log_buffer"], tensors),
        payload["meta"] if isinstance(payload["meta"], dict) else {},
    )


def _or_displaced(path: Path) -> Path:
    """``path``, or the displaced copy of the checkpoint it names when an overwrite of it was interrupted."""
    if os.path.lexists(path) or not _NAME.match(path.name):
        return path
    alt = _displaced(path.parent).get(path.name)
    if alt is None:
        return path
    _log.warning("%s is missing (an overwrite of it was interrupted); using its committed version %s", path, alt)
    return alt


def _follow_latest(path: Path) -> Path | None:
    """The checkpoint a ``latest`` pointer file names, or ``None`` if ``path`` is not one."""
    if path.stat().st_size > 256:
        return None
    try:
        name = path.read_text(encoding="ascii").strip()
    except (UnicodeDecodeError, ValueError):
        return None
    if not _NAME.match(name) or name == LATEST:
        return None
    return path.parent / name


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Committed checkpoints in ``directory``, newest first (by the progress in their manifest).

    A checkpoint displaced by an interrupted overwrite (``<name>.old-*`` with no ``<name>``) is
    listed under its own path. Unreadable manifests sort last; nothing is verified here.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        if not _NAME.match(p.name) or not (p / MANIFEST).is_file():
            continue
        found.append((_order(p), p.name, p))
    found += [(_order(p), name, p) for name, p in _displaced(directory).items()]
    found.sort(reverse=True)
    return [p for _, _, p in found]


def find_latest(directory: str | Path, *, logger: logging.Logger | None = None) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` that passes every check, or ``None``.

    Each invalid candidate is reported on ``logger`` (a warning naming the failed check) and
    the previous one is tried. The ``latest`` pointer is only advisory: a checkpoint committed
    after the pointer's last update (a crash in between) is found by the scan.
    """
    log = logger or _log
    for p in list_checkpoints(directory):
        try:
            return load_checkpoint(p)
        except CheckpointError as exc:
            log.warning("skipping invalid checkpoint %s: %s", p, exc)
    return None


def resolve_resume(resume: str | Path, search: Sequence[Path], *, logger: logging.Logger | None = None) -> Checkpoint | None:
    """The checkpoint ``run(..., resume=...)`` continues from.

    ``"auto"``: the newest valid checkpoint in the first of ``search`` that has one, or
    ``None`` (a new run) when there is none. A checkpoint directory: that checkpoint, which
    must be valid. A directory of checkpoints: its newest valid one. A ``latest`` file: the
    checkpoint it names, or the newest valid one if that one is invalid.

    Raises:
        CheckpointError: as :func:`load_checkpoint`; also when a named directory holds no
            valid checkpoint.
    """
    log = logger or _log
    if isinstance(resume, str) and resume == "auto":
        for d in search:
            ck = find_latest(d, logger=log)
            if ck is not None:
                return ck
        log.info("resume='auto': no checkpoint in %s; starting a new run", ", ".join(map(str, search)) or "(nowhere)")
        return None
    path = _or_displaced(Path(resume))
    if not path.exists():
        msg = f"resume={str(resume)!r}: no such file or directory"
        raise CheckpointNotFoundError(msg)
    if path.is_dir() and not (path / MANIFEST).exists():
        ck = find_latest(path, logger=log)
        if ck is None:
            msg = f"resume={str(resume)!r}: no valid checkpoint in this directory"
            raise CheckpointError(msg)
        return ck
    target = _follow_latest(path) if path.is_file() else None
    if target is not None and path.name != LATEST and not os.path.lexists(_or_displaced(target)):
        # Not a pointer written by the checkpoint writer (e.g. a one-word notes file): never fall back.
        msg = f"resume={str(resume)!r}: {_not_a_checkpoint(path)}"
        raise NotACheckpointError(msg)
    if target is not None:
        try:
            return load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("%s names an invalid checkpoint (%s); looking for the newest valid one", path, exc)
            ck = find_latest(path.parent, logger=log)
            if ck is None:
                msg = f"resume={str(resume)!r}: no valid checkpoint in {path.parent}"
                raise CheckpointError(msg) from exc
            return ck
    return load_checkpoint(path)


def load_model_state(model: Any, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True,
                     logger: logging.Logger | None = None) -> tuple[list[str], list[str], list[str]]:
    """Copy ``state_dict`` into ``model``; return the ``(missing, unexpected, wrong_shape)`` keys.

    Raises:
        CheckpointMismatchError: with ``strict``, when any key is missing, unexpected or of
            another shape; the message names them. ``strict=False`` loads the keys that fit.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or shapes:

        def names(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing in the checkpoint: {names(missing)}")
        if unexpected:
            parts.append(f"not in the model: {names(unexpected)}")
        if shapes:
            parts.append("shape differs: " + names([f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}" for k in shapes]))
        text = f"the checkpoint does not fit {type(model).__name__}: " + "; ".join(parts)
        if strict:
            raise CheckpointMismatchError(text + "; pass strict=False to load the keys that fit")
        (logger or _log).warning("%s; loading the %d keys that fit", text, len(own) - len(missing) - len(shapes))
    fit = {k: v for k, v in state_dict.items() if k in own and k not in shapes}
    from fsm_trainer.dist import fsdp_load_model, is_fsdp

    if is_fsdp(model):  # a collective: every rank loads the same full state dict
        fsdp_load_model(model, fit)
    else:
        model.load_state_dict(fit, strict=False)
    return missing, unexpected, shapes


def load_optimizer_state(model: Any, optimizer: Any, saved: Any) -> None:
    """Load ``saved`` (``Optimizer.state_dict()`` layout, or a dict of them for a dict of
    optimizers) into ``optimizer``; through FSDP's full-state loading when ``model`` is sharded
    (a collective)."""
    from fsm_trainer.dist import fsdp_load_optimizer, is_fsdp

    pairs = [(o, saved[k]) for k, o in optimizer.items()] if isinstance(optimizer, Mapping) else [(optimizer, saved)]
    for o, sd in pairs:
        if is_fsdp(model):
            fsdp_load_optimizer(model, o, sd)
        else:
            o.load_state_dict(sd)


def _numpy_globals() -> list[Any]:
    scalar = getattr(getattr(np, "_core", np).multiarray, "scalar", None) or np.core.multiarray.scalar  # type: ignore[attr-defined]
    kinds = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]
    return [scalar, np.dtype, *(type(np.dtype(k)) for k in kinds)]


def load_weights(
    model: Any, path: str | Path, *, strict: bool = False, allow_numpy: bool = False,
    logger: logging.Logger | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """mmcv's ``load_from``: copy weights from a checkpoint or a ``.pth`` file into ``model``.

    An fsm_trainer checkpoint is loaded with :func:`load_checkpoint`. Any other file goes
    through ``torch.load(weights_only=True)`` and never with ``weights_only=False``; the
    weights are the file's ``state_dict`` entry (mmcv layout) or the file itself, with a
    ``module.`` prefix removed as mmcv does.

    Args:
        strict: refuse missing, unexpected or differently shaped keys (mmcv's default for
            ``load_from`` is ``False``, as here).
        allow_numpy: allow NumPy scalars and dtypes in the file (mmcv writes them in ``meta``);
            only for files whose origin you trust.

    Returns:
        ``(missing, unexpected, wrong_shape)`` key lists.

    Raises:
        CheckpointNotFoundError, CheckpointMismatchError, NotACheckpointError (the file needs
        more than ``weights_only`` allows; the message says what and how to opt in).
    """
    path = Path(path)
    if not path.exists():
        msg = f"load_from={str(path)!r}: no such file or directory"
        raise CheckpointNotFoundError(msg)
    if path.is_dir() or _follow_latest(path) is not None:
        return load_model_state(model, load_checkpoint(path).model, strict=strict, logger=logger)
    import pickle

    try:
        if allow_numpy:
            with torch.serialization.safe_globals(_numpy_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "numpy" in str(exc) and not allow_numpy:
            hint = (" It holds NumPy objects (mmcv writes NumPy scalars in 'meta'); if you trust where the "
                    "file comes from, pass allow_numpy=True to allow NumPy scalar types.")
        msg = (f"{path} needs more than torch.load(weights_only=True) allows: {first}. fsm_trainer never "
               f"loads files with weights_only=False.{hint}")
        raise NotACheckpointError(msg) from None
    except (RuntimeError, OSError, EOFError) as exc:
        msg = f"{path}: cannot be read as a PyTorch file ({exc})"
        raise NotACheckpointError(msg) from None
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        msg = f"{path}: no state_dict of named tensors found (got {type(sd).__name__})"
        raise NotACheckpointError(msg)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return load_model_state(model, sd, strict=strict, logger=logger)


# --------------------------------------------------------------------------- run glue


def _optimizer_state(optimizer: Any) -> Any:
    if optimizer is None:
        return None
    if isinstance(optimizer, Mapping):
        return {k: o.state_dict() for k, o in optimizer.items()}
    return optimizer.state_dict()


def data_position(ctx: Any, state: TrainState) -> dict[str, Any]:
    """Where the data is for a run at ``state``: plain data stored in the checkpoint.

    Epoch-based: the train epoch and the batches of it already consumed (``state.inner_iter``
    in a mid-epoch state). Iter-based: ``(pass, batches taken in the pass)`` of every loader.
    Distributed, batches are per rank and ``world_size`` says how many ranks there were.
    """
    from fsm_trainer.dist import get_dist_info

    world = get_dist_info()[1]
    ranks = {"world_size": world} if world > 1 else {}  # batches are per rank: a position needs the count
    if ctx.table.by == "iter" and ctx.iter_loaders is not None:
        return {"kind": "iter", "loaders": [[il.epoch, il.index] for il in ctx.iter_loaders], **ranks}
    return {"kind": "epoch", "epoch": state.epoch, "batches": state.inner_iter, **ranks}


def snapshot(ctx: Any, state: TrainState, *, save_optimizer: bool = True,
             rng_states: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The keyword arguments of :func:`save_checkpoint` for a run (``ctx``) resuming at ``state``.

    ``state`` must be the position to continue from (the counters already advanced). The
    model, optimizer, every hook's ``state_dict()``, the RNG states (``rng_states`` if given:
    :func:`fsm_trainer.rng.capture` output taken when ``state`` was current), the data
    position and the log buffer are captured now.

    Distributed, every rank must call it at the same point: each rank's RNG states and log
    buffer are gathered to rank 0 (``rng["ranks"][r]``, ``log_buffer["ranks"][r]``), which gets
    the arguments; the other ranks get ``None`` and write nothing. Model, optimizer and hook
    states are rank 0's: data-parallel training keeps them equal on every rank. A model sharded
    by FSDP is gathered into full, unsharded state dicts (model, optimizer in
    ``Optimizer.state_dict()`` layout, hook tensors), so the checkpoint loads anywhere.
    """
    from fsm_trainer import rng
    from fsm_trainer.dist import fsdp_state_dicts, full_tensors, gather_objects, get_dist_info, is_fsdp

    sharded = None
    if is_fsdp(ctx.model):  # collectives: every rank takes part, rank 0 gets full tensors
        msd, osd = fsdp_state_dicts(ctx.model, ctx.optimizer if save_optimizer else None)
        hooks_full = full_tensors({h.name: h.state_dict() for h in ctx.hooks if h.state_dict is not None})
        sharded = (msd, osd, hooks_full)
    buf = None
    if ctx.uses_log_buffer:
        b = ctx.log_buffer
        buf = {"values": b.values, "counts": b.counts, "output": b.output, "ready": b.ready}
    states = dict(rng_states) if rng_states is not None else rng.capture()
    rank, world = get_dist_info()
    if world > 1:
        per_rank = gather_objects({"rng": states, "log_buffer": buf})
        if rank != 0 or per_rank is None:
            return None
        states = {**states, "ranks": [p["rng"] for p in per_rank]}
        if buf is not None:
            buf = {**buf, "ranks": [p["log_buffer"] for p in per_rank]}
    if sharded is not None:
        model, opt_state, hooks = sharded
    else:
        model = ctx.model.state_dict() if hasattr(ctx.model, "state_dict") else {}
        hooks = {h.name: h.state_dict() for h in ctx.hooks if h.state_dict is not None}
        opt_state = _optimizer_state(ctx.optimizer) if save_optimizer else None
    return {
        "state": state, "table": ctx.table, "model": model,
        "optimizer": opt_state,
        "hooks": hooks, "rng": states, "data": data_position(ctx, state), "log_buffer": buf,
        "meta": ctx.meta,
    }


def save_snapshot(ctx: Any, state: TrainState, directory: str | Path, name: str, *,
                  save_optimizer: bool = True, update_latest: bool = True,
                  rng_states: Mapping[str, Any] | None = None) -> Path:
    """:func:`snapshot` then :func:`save_checkpoint`, on every rank of a job.

    Rank 0 writes; then every rank waits (a barrier) until the checkpoint is committed, so
    no rank runs ahead of a checkpoint that may be resumed from. Returns the checkpoint's path
    on every rank. Other ranks' directories stay untouched.
    """
    from fsm_trainer.dist import barrier

    kwargs = snapshot(ctx, state, save_optimizer=save_optimizer, rng_states=rng_states)
    path = Path(directory) / name
    if kwargs is not None:
        path = save_checkpoint(directory, name, **kwargs, update_latest=update_latest)
    barrier()
    return path


def _for_rank(saved: Any, rank: int, world: int) -> Any:
    """This rank's entry of a per-rank list saved by :func:`snapshot` (rank 0's when the job shrank or grew)."""
    if not isinstance(saved, dict) or "ranks" not in saved:
        return saved
    ranks = saved["ranks"]
    if len(ranks) == world:
        return ranks[rank]
    return {k: v for k, v in saved.items() if k != "ranks"}


@attrs.define
class Restorer:
    """Puts a loaded checkpoint back into a run; :func:`fsm_trainer.run` drives it.

    Order: :meth:`find` loads the model and optimizer before the run starts; the loop calls
    :meth:`load_hooks` after ``before_run`` (and ``before_epoch``, iter-based), then
    :meth:`load_rng` right before the first thing the original run did after the save.
    """

    ckpt: Checkpoint
    ctx: Any

    @classmethod
    def find(cls, resume: str | Path, ctx: Any, *, strict: bool = True) -> Restorer | None:
        """Resolve ``resume`` (see :func:`resolve_resume`), check it fits the run, load weights.

        Raises:
            CheckpointError: as :func:`resolve_resume`, or the checkpoint belongs to another
                workflow; CheckpointMismatchError for another model (with ``strict``).
        """
        from fsm_trainer.dist import broadcast_object, get_dist_info

        search = list(dict.fromkeys([*ctx.checkpoint_dirs, *([ctx.work_dir] if ctx.work_dir else [])]))
        if get_dist_info()[1] > 1:
            # Rank 0 picks the checkpoint and every rank loads that one: ranks scanning the
            # directory on their own could disagree, and a failed check must stop them all.
            found: Any = None
            if get_dist_info()[0] == 0:
                try:
                    ck0 = resolve_resume(resume, search, logger=ctx.logger)
                    found = None if ck0 is None else str(ck0.path)
                except CheckpointError as exc:
                    found = exc
            found = broadcast_object(found)
            if isinstance(found, CheckpointError):
                raise found
            ck = None if found is None else load_checkpoint(found)
        else:
            ck = resolve_resume(resume, search, logger=ctx.logger)
        if ck is None:
            return None
        saved, table = ck.table, ctx.table
        if (saved.by, saved.workflow) != (table.by, table.workflow):
            msg = (
                f"{ck.path} was saved by a {saved.by}-based run with workflow {list(saved.workflow)}; "
                f"this run is {table.by}-based with workflow {list(table.workflow)}"
            )
            raise CheckpointError(msg)
        if (saved.max_epochs, saved.max_iters) != (table.max_epochs, table.max_iters):
            ctx.logger.info("resuming with max_epochs=%s, max_iters=%s (the checkpoint's run had %s, %s)",
                            table.max_epochs, table.max_iters, saved.max_epochs, saved.max_iters)
        if hasattr(ctx.model, "load_state_dict"):
            load_model_state(ctx.model, ck.model, strict=strict, logger=ctx.logger)
        if ctx.optimizer is not None:
            if ck.optimizer is None:
                ctx.logger.warning("%s has no optimizer state (save_optimizer=False); the optimizer starts fresh", ck.path)
            else:
                load_optimizer_state(ctx.model, ctx.optimizer, ck.optimizer)
        ctx.resumed_from = ck.path
        s = ck.state
        ctx.logger.info("resumed from %s: epoch %d, iter %d, inner_iter %d, %s", ck.path, s.epoch, s.iter,
                        s.inner_iter, table.node_name(s.phase))
        return cls(ck, ctx)

    def load_hooks(self) -> None:
        """Call each hook's ``load_state_dict`` with its saved state; restore the log buffer."""
        saved = dict(self.ckpt.hooks)
        for h in self.ctx.hooks:
            if h.load_state_dict is None:
                continue
            if h.name in saved:
                h.load_state_dict(saved.pop(h.name))
            else:
                self.ctx.logger.warning("%s holds no state for hook %r; it starts fresh", self.ckpt.path, h.name)
        for name in saved:
            self.ctx.logger.warning("%s holds state for hook %r, which this run does not have", self.ckpt.path, name)
        from fsm_trainer.dist import get_dist_info

        buf = _for_rank(self.ckpt.log_buffer, *get_dist_info())
        if buf is not None and self.ctx.uses_log_buffer:
            b = self.ctx.log_buffer
            b.values, b.counts, b.output, b.ready = buf["values"], buf["counts"], buf["output"], buf["ready"]

    def load_rng(self) -> None:
        """Set the global RNGs to their state at the save."""
        if self.ckpt.rng is not None:
            from fsm_trainer import rng
            from fsm_trainer.dist import get_dist_info

            rng.restore(_for_rank(self.ckpt.rng, *get_dist_info()))

    def saved_world_size(self) -> int:
        """The number of ranks of the run that saved the checkpoint (1 for older checkpoints)."""
        return int(self.ckpt.data.get("world_size", 1))

    def start_batches(self, inner_iter: int) -> int:
        """Per-rank batches already done in the saved epoch, on this run's number of ranks.

        The same number on the same number of ranks; else see
        :func:`fsm_trainer.dist.rescale_position`.
        """
        from fsm_trainer.dist import get_dist_info, rescale_position

        return rescale_position(inner_iter, self.saved_world_size(), get_dist_info()[1])

    def iter_positions(self) -> list[tuple[int, int]] | None:
        """``(pass, index)`` per loader for an iter-based run (on this run's ranks), or ``None``."""
        data = self.ckpt.data
        if data.get("kind") != "iter":
            return None
        return [(int(e), self.start_batches(int(i))) for e, i in data["loaders"]]


__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CheckpointWriteError",
    "CorruptCheckpointError",
    "NotACheckpointError",
    "Restorer",
    "cleanup_stale",
    "decode",
    "encode",
    "find_latest",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_state",
    "load_optimizer_state",
    "load_weights",
    "remove_checkpoint",
    "resolve_resume",
    "save_checkpoint",
    "save_snapshot",
    "snapshot",
    "to_remove",
    "verify",
    "write_latest",
]
