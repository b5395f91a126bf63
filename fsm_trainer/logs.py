"""Reading mmcv-style ``.log.json`` files and plotting training curves (``fsm-trainer plot``).

A ``.log.json`` holds one JSON object per line: first the run's ``meta`` (no ``mode`` key),
then one record per logged interval, ``{"mode": "train"|"val", "epoch": e, "iter": i, ...}``.
Its x axis is the **global train iteration** (:func:`global_iters`):

* an epoch-based run logs ``iter`` inside the epoch (``1..epoch_len``): a train record of epoch
  ``e`` is at ``(e - 1) * epoch_len + iter``, a val record after epoch ``e`` at ``e * epoch_len``.
  ``epoch_len`` is read from the meta line (``fsm-trainer train`` writes it); for other logs it
  is the largest ``iter`` of a train record in any of the files (exact when the last batch of
  an epoch is logged, as with ``ignore_last=False`` or an interval dividing the epoch);
* an iter-based run logs the global ``iter`` already; a val record sits at the train iteration
  logged before it.

Records are placed by their own counters, so a log written by a resumed run (a new file that
starts in the middle) continues where the first one ended instead of restarting at 0.

>>> recs = [{"mode": "train", "epoch": 1, "iter": 10, "loss": 1.0},
...         {"mode": "train", "epoch": 1, "iter": 20, "loss": 0.5},
...         {"mode": "val", "epoch": 1, "iter": 5, "loss": 0.7},
...         {"mode": "train", "epoch": 2, "iter": 10, "loss": 0.4}]
>>> curves(recs, "loss", epoch_len=25)
{'train': ([10, 20, 35], [1.0, 0.5, 0.4]), 'val': ([25], [0.7])}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from fsm_trainer.errors import FsmTrainerError


class LogFileError(FsmTrainerError, ValueError):
    """A log file cannot be read, or a plot cannot be written where asked; the message names the file."""


@attrs.frozen
class Log:
    """One ``.log.json``: its meta line (``{}`` if none) and its records, in file order."""

    path: Path
    meta: dict[str, Any]
    records: tuple[dict[str, Any], ...]


def read_log(path: str | Path) -> Log:
    """The meta line and records of the ``.log.json`` at ``path``.

    Raises:
        LogFileError: the file is missing, unreadable, not UTF-8, or a line is not a JSON object.
    """
    p = Path(path)
    if not p.is_file():
        msg = f"{p}: no such log file" if not p.exists() else f"{p}: not a file"
        raise LogFileError(msg)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{p}: not a UTF-8 text file (byte {exc.start}); expected an mmcv-style .log.json"
        raise LogFileError(msg) from exc
    except OSError as exc:
        msg = f"{p}: cannot read: {exc.strerror or exc}"
        raise LogFileError(msg) from exc
    meta: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"{p}:{i}: not JSON ({exc.msg}); expected an mmcv-style .log.json"
            raise LogFileError(msg) from exc
        if not isinstance(rec, dict):
            msg = f"{p}:{i}: expected a JSON object, got {type(rec).__name__}"
            raise LogFileError(msg)
        if "mode" in rec:
            records.append(rec)
        elif not records and not meta:
            meta = rec
    return Log(p, meta, tuple(records))


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``.log.json`` (the meta line is skipped)."""
    return list(read_log(path).records)


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def is_by_epoch(records: Iterable[dict[str, Any]], meta: dict[str, Any] | None = None) -> bool:
    """Whether train ``iter`` counts inside each epoch: the meta's ``by``, else whether it restarts with a new epoch.

    >>> is_by_epoch([{"mode": "train", "epoch": 1, "iter": 40}, {"mode": "train", "epoch": 2, "iter": 20}])
    True
    >>> is_by_epoch([{"mode": "train", "epoch": 1, "iter": 50}, {"mode": "train", "epoch": 2, "iter": 100}])
    False
    """
    if meta and meta.get("by") in ("epoch", "iter"):
        return bool(meta["by"] == "epoch")
    last: tuple[int, int] | None = None
    for rec in records:
        if rec.get("mode") != "train":
            continue
        e, i = _int(rec.get("epoch")), _int(rec.get("iter"))
        if e is None or i is None:
            continue
        if last is not None and e > last[0] and i <= last[1]:
            return True
        last = (e, i)
    return False


def epoch_length(logs: Sequence[Log]) -> int | None:
    """The train loader's length of the run: a meta line's ``epoch_len``, else the largest train ``iter``."""
    for log in logs:
        n = _int(log.meta.get("epoch_len"))
        if n:
            return n
    iters = [i for log in logs for r in log.records if r.get("mode") == "train" and (i := _int(r.get("iter")))]
    return max(iters) if iters else None


def global_iters(records: Sequence[dict[str, Any]], *, by_epoch: bool, epoch_len: int | None) -> list[int | None]:
    """The global train iteration of each record (``None`` for a record that cannot be placed).

    >>> global_iters([{"mode": "train", "epoch": 3, "iter": 5}, {"mode": "val", "epoch": 3, "iter": 2}],
    ...              by_epoch=True, epoch_len=10)
    [25, 30]
    >>> global_iters([{"mode": "train", "epoch": 1, "iter": 50}, {"mode": "val", "epoch": 1, "iter": 3}],
    ...              by_epoch=False, epoch_len=None)
    [50, 50]
    """
    out: list[int | None] = []
    last: int | None = None
    for rec in records:
        e, i = _int(rec.get("epoch")), _int(rec.get("iter"))
        x: int | None
        if rec.get("mode") == "train":
            placed = by_epoch and e is not None and i is not None and epoch_len
            x = (e - 1) * epoch_len + i if placed else i  # type: ignore[operator]
            last = x if x is not None else last
        elif by_epoch and e is not None and epoch_len:
            x = e * epoch_len  # a val epoch (or evaluation) after e train epochs
        else:
            x = last
        out.append(x)
    return out


def curves(records: Sequence[dict[str, Any]], key: str, *, by_epoch: bool | None = None,
           epoch_len: int | None = None) -> dict[str, tuple[list[int], list[float]]]:
    """``{mode: (x, y)}`` of the numeric values of ``key``; x is the global train iteration (module docstring)."""
    if by_epoch is None:
        by_epoch = is_by_epoch(records)
    if by_epoch and epoch_len is None:
        epoch_len = epoch_length([Log(Path(), {}, tuple(records))])
    out: dict[str, tuple[list[int], list[float]]] = {}
    for rec, x in zip(records, global_iters(records, by_epoch=by_epoch, epoch_len=epoch_len), strict=True):
        v = rec.get(key)
        if x is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        xs, ys = out.setdefault(str(rec["mode"]), ([], []))
        xs.append(x)
        ys.append(float(v))
    return out


def check_output(out: str | Path, what: str = "--out") -> Path:
    """``out`` if a figure can be written there: its directory exists and matplotlib knows its format.

    Raises:
        LogFileError: the directory is missing, or the format is unknown (the message lists the known ones).
    """
    p = Path(out)
    parent = p.parent if str(p.parent) else Path()
    if not parent.is_dir():
        msg = f"{what} {p}: the directory {parent} does not exist"
        raise LogFileError(msg)
    if p.is_dir():
        msg = f"{what} {p}: is a directory; give an image file name such as curves.png"
        raise LogFileError(msg)
    plt = _pyplot()
    fig = plt.figure()
    try:
        formats = fig.canvas.get_supported_filetypes()
    finally:
        plt.close(fig)
    suffix = p.suffix.lower().removeprefix(".")
    if suffix not in formats:
        msg = (f"{what} {p}: unknown image format {p.suffix or '(none)'!r}; "
               f"allowed: {', '.join('.' + f for f in sorted(formats))}")
        raise LogFileError(msg)
    return p


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        msg = "plotting needs matplotlib: pip install matplotlib (or pip install 'fsm-trainer[plot]')"
        raise LogFileError(msg) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_logs(paths: Sequence[str | Path], keys: Sequence[str], out: str | Path) -> Path:
    """Plot ``keys`` of the ``.log.json`` files ``paths`` against the global train iteration into ``out``.

    The files are taken as parts of one run (a run and its resumptions) for the x axis; each
    file is its own line when there are several.

    Raises:
        LogFileError: a missing or malformed log, an unwritable ``out``, or none of ``keys`` in the logs.
    """
    target = check_output(out)
    logs = [read_log(p) for p in paths]
    all_records = [r for log in logs for r in log.records]
    by_epoch = is_by_epoch(all_records, next((log.meta for log in logs if log.meta.get("by")), None))
    epoch_len = epoch_length(logs) if by_epoch else None
    plt = _pyplot()
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3 * len(keys)), squeeze=False)
    found = False
    try:
        for log in logs:
            for ax, key in zip(axes[:, 0], keys, strict=True):
                for mode, (xs, ys) in curves(log.records, key, by_epoch=by_epoch, epoch_len=epoch_len).items():
                    found = True
                    label = f"{log.path.name} {mode}" if len(logs) > 1 else mode
                    ax.plot(xs, ys, marker="o" if mode == "val" else None, label=label)
        if not found:
            msg = f"none of the keys {', '.join(keys)} is in {', '.join(map(str, paths))}"
            raise LogFileError(msg)
        for ax, key in zip(axes[:, 0], keys, strict=True):
            ax.set_ylabel(key)
            ax.set_xlabel("train iteration")
            if ax.lines:
                ax.legend()
        fig.tight_layout()
        try:
            fig.savefig(target)
        except OSError as exc:
            msg = f"--out {target}: cannot write: {exc.strerror or exc}"
            raise LogFileError(msg) from exc
    finally:
        plt.close(fig)
    return target


__all__ = [
    "Log", "LogFileError", "check_output", "curves", "epoch_length", "global_iters", "is_by_epoch", "plot_logs",
    "read_log", "read_records",
]
