"""A debugging trace: every hook point a run calls, with its state, as JSON lines.

Each line is ``{"seq": n, "point": "<hook point>", "state": <unstructured TrainState>}``
(:func:`fsm_trainer.serialize.unstructure`; tensors in ``outputs`` become numbers), so a line
gives back the state with ``structure(line["state"], TrainState)``. Comparing the traces of two
runs (or a run and :func:`fsm_trainer.simulate.simulate`) shows the first point where they
differ. Writing a line costs tens of microseconds: use it for debugging, not for long runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import EPOCH_SITES, ITER_SITES, Hook, HookFn, reachable_only
from fsm_trainer.priority import Priority
from fsm_trainer.serialize import structure, unstructure
from fsm_trainer.state import TrainState


def trace_hook(
    path: str | Path,
    *,
    points: Sequence[str] | None = None,
    outputs: bool = True,
    name: str = "TraceHook",
    priority: int | str = Priority.HIGHEST,
) -> Callable[[RunContext], Hook]:
    """Write every hook point of the run and its state to ``path`` (JSON lines, appended).

    Args:
        path: the file; relative paths are taken from the run's ``work_dir`` when it has one.
        points: the points to write (default: every point the run calls).
        outputs: include ``state.outputs`` (set ``False`` for smaller files).
        priority: ``HIGHEST`` (the default) records the state each point *receives*, before
            any other hook changes it (what :func:`~fsm_trainer.simulate.simulate` yields);
            ``LOWEST`` records the state the point *leaves*, after every hook.

    >>> import tempfile, os
    >>> from fsm_trainer import compile_workflow, run
    >>> from fsm_trainer.testing import noop_step
    >>> d = tempfile.mkdtemp()
    >>> _ = run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0]],
    ...         train_step=noop_step, val_step=noop_step, hooks=[trace_hook(os.path.join(d, "t.jsonl"))])
    >>> [(p, s.iter) for p, s in read_trace(os.path.join(d, "t.jsonl"))]  # doctest: +NORMALIZE_WHITESPACE
    [('before_run', 0), ('before_train_epoch', 0), ('before_train_iter', 0), ('after_train_iter', 0),
     ('after_train_epoch', 1), ('after_run', 1)]
    """

    def factory(ctx: RunContext) -> Hook:
        target = Path(path)
        if not target.is_absolute() and ctx.work_dir is not None:
            target = ctx.work_dir / target
        sites = EPOCH_SITES if ctx.table.by == "epoch" else ITER_SITES
        chosen = sites if points is None else [p for p in sites if p in points]
        f: list[IO[str]] = []
        seq = [0]

        def close() -> None:
            while f:
                f.pop().close()

        def at(point: str) -> HookFn:
            def write(s: TrainState) -> TrainState:
                if not f:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    f.append(open(target, "a", encoding="utf-8"))  # noqa: SIM115 - closed in after_run / on_exit
                    ctx.on_exit.append(close)
                data = unstructure(s)
                if not outputs:
                    data.pop("outputs", None)
                f[0].write(json.dumps({"seq": seq[0], "point": point, "state": data}, allow_nan=True) + "\n")
                seq[0] += 1
                if point == "after_run":
                    close()
                return s

            return write

        return Hook(name, priority, reachable_only({p: at(p) for p in chosen}, ctx.table))

    return factory


def read_trace(path: str | Path) -> Iterator[tuple[str, TrainState]]:
    """The ``(point, state)`` pairs of a trace file, states rebuilt (strictly) by cattrs."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec: dict[str, Any] = json.loads(line)
            state = rec["state"]
            state.setdefault("outputs", {})
            yield rec["point"], structure(state, TrainState)


__all__ = ["read_trace", "trace_hook"]
