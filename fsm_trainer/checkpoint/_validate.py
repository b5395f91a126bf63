"""Semantic checks of a checkpoint's state: what checksums cannot catch.

A ``state.json`` rewritten together with its manifest passes every checksum; these checks
make sure that what it says can be resumed: the position lies inside the saved run, the
transition table is the one its workflow compiles to, and the data position, RNG states and
log buffer have the layout the writer gives them. Each failure is a
:class:`CorruptCheckpointError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from fsm_trainer import rng as rng_mod
from fsm_trainer.checkpoint._errors import CorruptCheckpointError
from fsm_trainer.checkpoint._layout import MAX_INT
from fsm_trainer.errors import WorkflowError
from fsm_trainer.serialize import StateFormatError, structure
from fsm_trainer.state import TrainState
from fsm_trainer.transitions import END, MODES, START, TransitionTable, compile_workflow

MAX_WORLD_SIZE = 1 << 20
"""The most ranks a saved data position may name."""
_STATE_KEYS = frozenset(a.name for a in attrs.fields(TrainState))
_TABLE_KEYS = frozenset(a.name for a in attrs.fields(TransitionTable))


def _is_count(x: Any, high: int = MAX_INT) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= high


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _bad(where: Path, why: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(f"{where}: {why}")


def _keys(data: Any, required: frozenset[str], what: str, where: Path) -> None:
    if not isinstance(data, dict):
        raise _bad(where, f"{what!r} must be an object, got {type(data).__name__}")
    missing, unknown = sorted(required - set(data)), sorted(set(data) - required)
    if missing or unknown:
        raise _bad(where, f"{what!r}: missing keys {missing}, unknown keys {unknown}")


def structure_position(state_data: Any, table_data: Any, where: Path) -> tuple[TrainState, TransitionTable]:
    """The saved state and table, structured strictly and checked against each other.

    Every field of both must be present (no default fills a lost field), of its type, and:

    * the table is exactly what its workflow and maxima compile to;
    * counters are ints in ``[0, 2**63)``; ``mode`` is ``None``, ``"train"`` or ``"val"``;
    * ``phase`` is ``start``, ``end`` or an entry of the workflow, ``phase_done`` below that
      entry's count; the progress (``epoch`` or ``iter``) is at most the maximum while the
      run is inside the workflow, and has reached it at ``end``; in an iter-based run
      ``inner_iter`` is at most the entry's count.

    Raises:
        CorruptCheckpointError: naming the file and the first failed check.
    """
    _keys(state_data, _STATE_KEYS, "state", where)
    _keys(table_data, _TABLE_KEYS, "table", where)
    try:
        state = structure(state_data, TrainState)
        table = structure(table_data, TransitionTable)
    except StateFormatError as exc:
        raise _bad(where, str(exc)) from exc
    check_table(table, where)
    check_state(state, table, where)
    return state, table


def check_table(table: TransitionTable, where: Path) -> None:
    """Raise unless ``table`` is the compiled form of its own workflow and maxima."""
    limits = (table.max_epochs, table.max_iters)
    counts = [n for _, n in table.workflow]
    if not all(x is None or _is_count(x) for x in limits) or not all(_is_count(n) for n in counts):
        raise _bad(where, "the table's maxima and workflow counts must be ints in [0, 2**63)")
    try:
        compiled = compile_workflow(table.workflow, max_epochs=table.max_epochs, max_iters=table.max_iters)
    except WorkflowError as exc:
        raise _bad(where, f"the saved table is invalid: {exc}") from exc
    if compiled != table:
        raise _bad(where, "the saved table's rows are not those its workflow compiles to")


def check_state(state: TrainState, table: TransitionTable, where: Path) -> None:
    """Raise unless ``state`` is a position of a run of ``table`` (see :func:`structure_position`)."""
    for field in ("epoch", "iter", "inner_iter", "phase_done"):
        value = getattr(state, field)
        if not _is_count(value):
            raise _bad(where, f"state.{field} = {value!r:.40} is not an int in [0, 2**63)")
    if state.mode is not None and state.mode not in MODES:
        raise _bad(where, f"state.mode = {state.mode!r:.40} is not one of None, 'train', 'val'")
    n = len(table.workflow)
    if not (state.phase in (START, END) or 0 <= state.phase < n):
        raise _bad(where, f"state.phase = {state.phase} is not start ({START}), end ({END}) or an entry 0..{n - 1}")
    progress_name = "epoch" if table.by == "epoch" else "iter"
    progress, limit = getattr(state, progress_name), table.max_progress
    if state.phase == END:
        if progress < limit:
            raise _bad(where, f"state is at the end of the run, but state.{progress_name} = {progress} < {limit}")
        return
    if state.phase == START:
        return
    mode, count = table.workflow[state.phase]
    if state.phase_done >= count:
        raise _bad(where, f"state.phase_done = {state.phase_done}, but entry {state.phase} ({mode}) has {count} units")
    if progress > limit:
        raise _bad(where, f"state.{progress_name} = {progress} is past the run's maximum {limit}")
    if table.by == "iter" and state.inner_iter > count:
        raise _bad(where, f"state.inner_iter = {state.inner_iter}, but entry {state.phase} has {count} iterations")


def check_data(data: Any, state: TrainState, table: TransitionTable, where: Path) -> None:
    """Raise unless ``data`` is a data position as :func:`~fsm_trainer.checkpoint.data_position` writes it.

    ``{}`` (none saved); ``{"kind": "epoch", "epoch", "batches"}`` equal to the state's
    ``epoch`` and ``inner_iter``; or ``{"kind": "iter", "loaders"}`` with one ``[pass, index]``
    per workflow entry; either with ``world_size`` when several ranks saved it.
    """
    if not isinstance(data, dict):
        raise _bad(where, f"'data' must be an object, got {type(data).__name__}")
    if not data:
        return
    kind = data.get("kind")
    base = {"epoch": frozenset({"kind", "epoch", "batches"}), "iter": frozenset({"kind", "loaders"})}.get(str(kind))
    if not isinstance(kind, str) or base is None:
        raise _bad(where, f"data.kind = {kind!r:.40} is not 'epoch' or 'iter'")
    _keys(data, base | ({"world_size"} if "world_size" in data else set()), "data", where)
    if "world_size" in data and not (_is_count(data["world_size"], MAX_WORLD_SIZE) and data["world_size"] >= 1):
        raise _bad(where, f"data.world_size = {data['world_size']!r:.40} is not an int in [1, {MAX_WORLD_SIZE}]")
    if kind == "epoch":
        if (data["epoch"], data["batches"]) != (state.epoch, state.inner_iter) or not all(
            _is_count(data[k]) for k in ("epoch", "batches")
        ):
            raise _bad(where, f"data position epoch {data['epoch']!r:.40}, batches {data['batches']!r:.40} is not the "
                              f"state's (epoch {state.epoch}, inner_iter {state.inner_iter})")
        return
    loaders = data["loaders"]
    if (not isinstance(loaders, list) or len(loaders) != len(table.workflow)
            or not all(isinstance(p, list) and len(p) == 2 and all(_is_count(x) for x in p) for p in loaders)):
        raise _bad(where, f"data.loaders must be {len(table.workflow)} [pass, index] pairs of ints in [0, 2**63), "
                          f"got {loaders!r:.80}")


def check_rng(rng: Any, where: Path) -> None:
    """Raise unless ``rng`` is ``None`` or :func:`fsm_trainer.rng.capture` output (with per-rank ``ranks``)."""
    if rng is None:
        return
    states = [rng]
    if isinstance(rng, dict) and "ranks" in rng:
        ranks = rng["ranks"]
        if not isinstance(ranks, list) or not ranks:
            raise _bad(where, "rng.ranks must be a non-empty list of RNG states")
        states = [{k: v for k, v in rng.items() if k != "ranks"}, *ranks]
    for i, s in enumerate(states):
        try:
            rng_mod.check(s)
        except ValueError as exc:
            part = "rng" if i == 0 else f"rng.ranks[{i - 1}]"
            raise _bad(where, f"{part}: {exc}") from exc


def _is_history(x: Any) -> bool:
    return isinstance(x, dict) and all(
        isinstance(k, str) and isinstance(v, list) and all(_is_number(e) for e in v) for k, v in x.items()
    )


def check_log_buffer(buf: Any, where: Path) -> None:
    """Raise unless ``buf`` is ``None`` or the log buffer's saved averages (with per-rank ``ranks``)."""
    if buf is None:
        return
    buffers = [buf]
    if isinstance(buf, dict) and "ranks" in buf:
        ranks = buf["ranks"]
        if not isinstance(ranks, list) or not ranks:
            raise _bad(where, "log_buffer.ranks must be a non-empty list")
        buffers = [{k: v for k, v in buf.items() if k != "ranks"}, *ranks]
    for i, b in enumerate(buffers):
        part = "log_buffer" if i == 0 else f"log_buffer.ranks[{i - 1}]"
        _keys(b, frozenset({"values", "counts", "output", "ready"}), part, where)
        values, counts, output = b["values"], b["counts"], b["output"]
        if not _is_history(values) or not _is_history(counts) or set(values) != set(counts) or any(
            len(values[k]) != len(counts[k]) for k in values
        ):
            raise _bad(where, f"{part}: values and counts must map the same names to lists of numbers of equal length")
        if not isinstance(output, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in output.items()):
            raise _bad(where, f"{part}: output must map names to numbers")
        if not isinstance(b["ready"], bool):
            raise _bad(where, f"{part}: ready must be true or false")


def check_order(order: Sequence[Any], state: TrainState, where: Path) -> None:
    """Raise unless the manifest's ``order`` starts with the state's ``iter``, ``epoch``, ``inner_iter``."""
    if len(order) == 4 and list(order[:3]) != [state.iter, state.epoch, state.inner_iter]:
        raise _bad(where, f"the manifest's order {list(order[:3])} is not the state's (iter, epoch, inner_iter) "
                          f"{[state.iter, state.epoch, state.inner_iter]}")


def check_hooks(hooks: Any, where: Path) -> Mapping[str, Any]:
    """``hooks`` if it maps hook names to states, else raise."""
    if not isinstance(hooks, dict) or not all(isinstance(k, str) for k in hooks):
        raise _bad(where, "'hooks' must map hook names to their states")
    return hooks
