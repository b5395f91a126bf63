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
it back before anything else. An I/O error (disk full, file too large, read-only directory)
raises :class:`CheckpointWriteError` naming the path, with every previous checkpoint as it
was; a checkpoint that retention cannot remove is reported with a warning and kept.

Rules of the reader (:func:`load_checkpoint`): the manifest must be canonical JSON whose own
hash matches, of a known ``format``; each file must have the recorded size and checksum; the
tensor file is parsed with safetensors' rules (bounded header, contiguous offsets, dtype times
shape equal to the byte length, no shape beyond 64-bit counts); the state is structured
strictly by cattrs (every field present, of its type), nests at most 64 levels, and must make
sense: a position inside the saved run, a table equal to its compiled workflow, data position,
RNG states and log buffer of the writer's layout. Resuming also checks that the checkpoint
fits the run (workflow; the model's tensor names, shapes and dtypes, never cast; the
optimizer's groups and state; the data position within the loaders) before anything is
loaded. Any failure raises a :class:`CheckpointError` naming the file and the check;
``resume="auto"`` reports it with a warning and falls back to the previous checkpoint. No
pickle is involved anywhere; the only ``torch.load`` in fsm_trainer is :func:`load_weights`,
for ``.pth`` files, with ``weights_only=True``.

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

The package has one module per concept: ``_errors``, ``_layout`` (file names, formats,
limits, strict JSON), ``_codec``, ``_safetensors``, ``_durable`` (fsync), ``_commit`` (atomic
writes, retention's removal, fault points), ``_format`` (manifest, verification,
:class:`Checkpoint`), ``_validate`` (semantic checks), ``_discovery`` (listing, ``latest``,
displaced copies, stale files, retention choice), ``_weights``, ``_snapshot`` and ``_resume``.
Importing the package, its errors, layout and discovery does not import torch; the rest is
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsm_trainer._lazy import lazy_exports
from fsm_trainer.checkpoint._discovery import (
    UNKNOWN_ORDER,
    cleanup_stale,
    list_checkpoints,
    to_remove,
    unlisted_checkpoints,
)
from fsm_trainer.checkpoint._discovery import _displaced as _displaced
from fsm_trainer.checkpoint._discovery import _follow_latest as _follow_latest
from fsm_trainer.checkpoint._discovery import _or_displaced as _or_displaced
from fsm_trainer.checkpoint._discovery import _order as _order
from fsm_trainer.checkpoint._durable import _fsync_dir as _fsync_dir
from fsm_trainer.checkpoint._errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CheckpointWriteError,
    CorruptCheckpointError,
    NotACheckpointError,
)
from fsm_trainer.checkpoint._layout import _DISPLACED as _DISPLACED
from fsm_trainer.checkpoint._layout import _HASHERS as _HASHERS
from fsm_trainer.checkpoint._layout import _NAME as _NAME
from fsm_trainer.checkpoint._layout import _STALE as _STALE
from fsm_trainer.checkpoint._layout import (
    CHECKSUMS,
    FORMAT,
    LATEST,
    MANIFEST,
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_INT,
    MAX_MANIFEST_BYTES,
    STATE_FILE,
    TENSOR_FILE,
    nesting_depth,
)
from fsm_trainer.checkpoint._layout import _canonical as _canonical
from fsm_trainer.checkpoint._layout import _check_name as _check_name
from fsm_trainer.checkpoint._layout import _json as _json
from fsm_trainer.checkpoint._layout import _no_dupes as _no_dupes

if TYPE_CHECKING:
    from fsm_trainer.checkpoint._codec import decode as decode
    from fsm_trainer.checkpoint._codec import encode as encode
    from fsm_trainer.checkpoint._commit import FAULT_ENV as FAULT_ENV
    from fsm_trainer.checkpoint._commit import FAULTS as FAULTS
    from fsm_trainer.checkpoint._commit import FaultHook as FaultHook
    from fsm_trainer.checkpoint._commit import FaultInjector as FaultInjector
    from fsm_trainer.checkpoint._commit import _fault as _fault
    from fsm_trainer.checkpoint._commit import _write_file as _write_file
    from fsm_trainer.checkpoint._commit import kill_at as kill_at
    from fsm_trainer.checkpoint._commit import remove_checkpoint as remove_checkpoint
    from fsm_trainer.checkpoint._commit import save_checkpoint as save_checkpoint
    from fsm_trainer.checkpoint._commit import write_latest as write_latest
    from fsm_trainer.checkpoint._format import PAYLOAD_KEYS as PAYLOAD_KEYS
    from fsm_trainer.checkpoint._format import Checkpoint as Checkpoint
    from fsm_trainer.checkpoint._format import _not_a_checkpoint as _not_a_checkpoint
    from fsm_trainer.checkpoint._format import _open_verified as _open_verified
    from fsm_trainer.checkpoint._format import _read_manifest as _read_manifest
    from fsm_trainer.checkpoint._format import _sniff as _sniff
    from fsm_trainer.checkpoint._format import load_checkpoint as load_checkpoint
    from fsm_trainer.checkpoint._format import verify as verify
    from fsm_trainer.checkpoint._resume import Restorer as Restorer
    from fsm_trainer.checkpoint._resume import find_latest as find_latest
    from fsm_trainer.checkpoint._resume import fits_run as fits_run
    from fsm_trainer.checkpoint._resume import resolve_resume as resolve_resume
    from fsm_trainer.checkpoint._safetensors import _CODES as _CODES
    from fsm_trainer.checkpoint._safetensors import _DTYPES as _DTYPES
    from fsm_trainer.checkpoint._safetensors import _Digest as _Digest
    from fsm_trainer.checkpoint._safetensors import _raw as _raw
    from fsm_trainer.checkpoint._safetensors import _read_safetensors as _read_safetensors
    from fsm_trainer.checkpoint._safetensors import _write_safetensors as _write_safetensors
    from fsm_trainer.checkpoint._snapshot import _for_rank as _for_rank
    from fsm_trainer.checkpoint._snapshot import _optimizer_state as _optimizer_state
    from fsm_trainer.checkpoint._snapshot import data_position as data_position
    from fsm_trainer.checkpoint._snapshot import save_snapshot as save_snapshot
    from fsm_trainer.checkpoint._snapshot import snapshot as snapshot
    from fsm_trainer.checkpoint._weights import _numpy_globals as _numpy_globals
    from fsm_trainer.checkpoint._weights import check_model_fit as check_model_fit
    from fsm_trainer.checkpoint._weights import check_optimizer_state as check_optimizer_state
    from fsm_trainer.checkpoint._weights import load_model_state as load_model_state
    from fsm_trainer.checkpoint._weights import load_optimizer_state as load_optimizer_state
    from fsm_trainer.checkpoint._weights import load_weights as load_weights
    from fsm_trainer.checkpoint._weights import model_layout as model_layout

_LAZY: dict[str, str] = {
    **dict.fromkeys(["decode", "encode"], "_codec"),
    **dict.fromkeys(["_CODES", "_DTYPES", "_Digest", "_raw", "_read_safetensors", "_write_safetensors"],
                    "_safetensors"),
    **dict.fromkeys(["FAULT_ENV", "FAULTS", "FaultHook", "FaultInjector", "_fault", "_write_file", "kill_at",
                     "remove_checkpoint", "save_checkpoint", "write_latest"], "_commit"),
    **dict.fromkeys(["PAYLOAD_KEYS", "Checkpoint", "_not_a_checkpoint", "_open_verified", "_read_manifest",
                     "_sniff", "load_checkpoint", "verify"], "_format"),
    **dict.fromkeys(["_numpy_globals", "check_model_fit", "check_optimizer_state", "load_model_state",
                     "load_optimizer_state", "load_weights", "model_layout"], "_weights"),
    **dict.fromkeys(["_for_rank", "_optimizer_state", "data_position", "save_snapshot", "snapshot"], "_snapshot"),
    **dict.fromkeys(["Restorer", "find_latest", "fits_run", "resolve_resume"], "_resume"),
}


# The modules that need torch are imported on first use, so discovery stays torch-free.
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "CHECKSUMS",
    "FAULTS",
    "FAULT_ENV",
    "FORMAT",
    "LATEST",
    "MANIFEST",
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_INT",
    "MAX_MANIFEST_BYTES",
    "PAYLOAD_KEYS",
    "STATE_FILE",
    "TENSOR_FILE",
    "UNKNOWN_ORDER",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "CheckpointWriteError",
    "CorruptCheckpointError",
    "FaultHook",
    "FaultInjector",
    "NotACheckpointError",
    "Restorer",
    "check_model_fit",
    "check_optimizer_state",
    "cleanup_stale",
    "data_position",
    "decode",
    "encode",
    "find_latest",
    "fits_run",
    "kill_at",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_state",
    "load_optimizer_state",
    "load_weights",
    "model_layout",
    "nesting_depth",
    "remove_checkpoint",
    "resolve_resume",
    "save_checkpoint",
    "save_snapshot",
    "snapshot",
    "to_remove",
    "unlisted_checkpoints",
    "verify",
    "write_latest",
]

