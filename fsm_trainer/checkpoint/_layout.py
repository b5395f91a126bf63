"""The on-disk layout: file names, format identifiers, checksums, limits, name rules, strict JSON.

Nothing here imports torch: checkpoint discovery and the CLI's path handling use it alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import xxhash

from fsm_trainer.checkpoint._errors import CheckpointError, CorruptCheckpointError

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
MAX_DEPTH = 64
"""The deepest nesting of lists and objects a checkpoint's JSON may have (what the writer stores nests about 8)."""
MAX_INT = (1 << 63) - 1
"""The largest counter, position or tensor dimension a checkpoint may hold (int64)."""

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_STALE = re.compile(r"\.(tmp|old|deleting)-[0-9a-f]+$")
_DISPLACED = re.compile(r"^([A-Za-z0-9_\-]+)\.old-[0-9a-f]+$")


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name == LATEST:
        msg = f"checkpoint name {name!r} must be letters, digits, '_' or '-' (and not {LATEST!r})"
        raise CheckpointError(msg)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            msg = f"duplicate key {k!r}"
            raise CorruptCheckpointError(msg)
        out[k] = v
    return out


def nesting_depth(obj: Any) -> int:
    """How deeply lists and dicts nest in ``obj`` (0 for a scalar), found without recursion.

    >>> nesting_depth({"a": [1, {"b": []}]}), nesting_depth(3)
    (4, 0)
    """
    if not isinstance(obj, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        # Only containers are pushed: a long list of numbers (an RNG state) costs one check each.
        nested = [c for c in (value.values() if isinstance(value, dict) else value) if isinstance(c, (dict, list))]
        stack.extend([(c, depth + 1) for c in nested])
    return deepest


def _json(raw: bytes | memoryview, what: str) -> Any:
    """Strict JSON: no duplicate keys, at most :data:`MAX_DEPTH` levels of nesting.

    Raises:
        CorruptCheckpointError: naming ``what`` and the reason.
    """
    try:
        data = json.loads(bytes(raw), object_pairs_hook=_no_dupes)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        msg = f"{what}: not valid JSON ({exc})"
        raise CorruptCheckpointError(msg) from exc
    depth = nesting_depth(data)
    if depth > MAX_DEPTH:
        msg = f"{what}: nested {depth} levels deep, more than the {MAX_DEPTH} a checkpoint may have"
        raise CorruptCheckpointError(msg)
    return data
