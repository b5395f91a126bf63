"""Discovery and retention: which checkpoints a directory holds, newest first, and what to delete.

Torch-free: listing, following ``latest``, finding checkpoints displaced by an interrupted
overwrite, repairing what interrupted writes left (:func:`cleanup_stale`) and choosing what
retention removes (:func:`to_remove`) need no tensor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from fsm_trainer.checkpoint._durable import _fsync_dir
from fsm_trainer.checkpoint._errors import _read_error
from fsm_trainer.checkpoint._layout import (
    _DISPLACED,
    _NAME,
    _STALE,
    LATEST,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    STATE_FILE,
    TENSOR_FILE,
)

_log = logging.getLogger("fsm_trainer")

UNKNOWN_ORDER = (-1,)
"""The progress of a checkpoint whose manifest cannot be read."""


def _order(path: Path) -> tuple[int, ...]:
    """The progress a checkpoint's manifest records (:data:`UNKNOWN_ORDER` if unreadable); nothing is verified."""
    try:
        order = json.loads((path / MANIFEST).read_bytes()[:MAX_MANIFEST_BYTES])["order"]
        out = tuple(int(x) for x in order)
    except (ValueError, KeyError, TypeError, OSError, RecursionError):
        return UNKNOWN_ORDER
    return out if out and all(x >= 0 for x in out) else UNKNOWN_ORDER


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
    """The checkpoint a ``latest`` pointer file names, or ``None`` if ``path`` is not one.

    Raises:
        CheckpointError: ``path`` cannot be read (the ``OSError`` is its ``__cause__``).
    """
    try:
        if path.stat().st_size > 256:
            return None
        name = path.read_text(encoding="ascii").strip()
    except (UnicodeDecodeError, ValueError):
        return None
    except OSError as exc:
        raise _read_error(path, exc) from exc
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


def unlisted_checkpoints(directory: str | Path) -> list[Path]:
    """Directories in ``directory`` that hold checkpoint files but no manifest, sorted by name.

    A committed checkpoint always has its manifest (the writer renames the whole directory
    into place), so these are checkpoints whose manifest was lost or deleted.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir()
        if _NAME.match(p.name) and p.is_dir() and not (p / MANIFEST).exists()
        and ((p / STATE_FILE).exists() or (p / TENSOR_FILE).exists())
    )


def cleanup_stale(directory: str | Path) -> list[Path]:
    """Repair what interrupted writes left in ``directory`` and return the paths removed.

    A committed checkpoint displaced by an interrupted overwrite (``<name>.old-*`` with no
    ``<name>``) is first renamed back to ``<name>``; then every ``*.tmp-*``, ``*.old-*`` and
    ``*.deleting-*`` is removed. What cannot be repaired or removed (a read-only directory)
    is logged as a warning and left; committed checkpoints are never touched.
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    restored = False
    kept: set[Path] = set()
    for name, p in _displaced(directory).items():
        try:
            os.replace(p, directory / name)
        except OSError as exc:
            kept.add(p)
            _log.warning("could not restore checkpoint %s from %s (%s); readers use %s as it is",
                         directory / name, p.name, exc, p.name)
            continue
        restored = True
        _log.warning("restored checkpoint %s from %s, left by an interrupted overwrite", directory / name, p.name)
    if restored:
        try:
            _fsync_dir(directory)
        except OSError as exc:
            _log.warning("could not fsync %s: %s", directory, exc)
    for p in directory.iterdir():
        if not _STALE.search(p.name) or p in kept:
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if os.path.lexists(p):
            _log.warning("could not remove %s, left by an interrupted save; it is never read", p)
        else:
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
