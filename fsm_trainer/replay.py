"""Replay: re-run N train iterations from a saved checkpoint and return what happened.

A checkpoint holds everything that decides the next iterations (weights, optimizer and hook
states, RNG states, data position), so with the same model code and data the replayed losses
equal the original run's, bit for bit. This is how to look at the NaN of iteration 12,345:
replay from the checkpoint before it, with extra hooks that inspect whatever you need.

From the command line::

    python -m fsm_trainer.replay work_dirs/run/iter_12000 --iters 400 \\
        --build my_project.train:build_for_replay --build-arg config=configs/a.py

``--build module:function`` (or ``path/to/file.py:function``) names *your* function; it is
called with the ``--build-arg`` values (JSON where they parse, else strings) and returns the
keyword arguments of :func:`fsm_trainer.run` (``model``, ``optimizer``, ``data_loaders``,
optionally ``hooks``, ``train_step``...; a ``table`` entry is ignored: the checkpoint's is used).
Nothing named inside the checkpoint is ever imported. Each replayed train iteration prints one
JSON line: ``{"epoch", "iter", "inner_iter", "loss", "log_vars"}``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from fsm_trainer.errors import WorkflowError
from fsm_trainer.hook import Hook
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


@attrs.frozen
class ReplayStep:
    """One replayed train iteration: the state after it (as hooks saw it) and its loss."""

    state: TrainState
    loss: float | None
    log_vars: dict[str, Any]


def _loss(outputs: Any) -> float | None:
    loss = outputs.get("loss") if hasattr(outputs, "get") else None
    if loss is None:
        return None
    return float(loss.detach().item()) if hasattr(loss, "detach") else float(loss)


def replay(
    checkpoint: str | Path,
    iters: int,
    *,
    hooks: Iterable[Any] = (),
    on_step: Callable[[ReplayStep], None] | None = None,
    **run_kwargs: Any,
) -> list[ReplayStep]:
    """Re-run ``iters`` train iterations from ``checkpoint``; return one record per iteration.

    Args:
        checkpoint: a checkpoint directory (or a ``latest`` file, or a directory of them).
        iters: how many train iterations to replay (val iterations in between run too, and
            are not counted); fewer if the run ends first.
        hooks: the run's hooks (leave out checkpoint hooks: a replay should not write).
        on_step: called with each record as it is made (e.g. to print it).
        run_kwargs: ``model``, ``optimizer``, ``data_loaders`` and the other keyword arguments
            of :func:`fsm_trainer.run`, built as for the original run. ``table`` defaults to
            the checkpoint's.

    Returns:
        The records, in order.
    """
    from fsm_trainer.checkpoint import load_checkpoint, resolve_resume
    from fsm_trainer.runner import run

    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        msg = f"iters must be an int >= 0, got {iters!r}"
        raise WorkflowError(msg)
    path = Path(checkpoint)
    ck = load_checkpoint(path) if (path / "manifest.json").is_file() else resolve_resume(path, [])
    assert ck is not None
    table = run_kwargs.pop("table", None) or ck.table
    records: list[ReplayStep] = []

    def record(s: TrainState) -> TrainState:
        log_vars = dict(s.outputs.get("log_vars") or {})
        step = ReplayStep(attrs.evolve(s, outputs={"log_vars": log_vars}), _loss(s.outputs), log_vars)
        records.append(step)
        if on_step is not None:
            on_step(step)
        return s.request_stop() if len(records) >= iters else s

    recorder = Hook("ReplayRecorder", Priority.LOWEST, {"after_train_iter": record})
    if iters:
        run(TrainState(), table, resume=ck.path, hooks=[*hooks, recorder], **run_kwargs)
    return records


def _load_builder(spec: str) -> Callable[..., dict[str, Any]]:
    mod_name, _, fn_name = spec.rpartition(":")
    if not mod_name or not fn_name:
        msg = f"--build must be module:function or path/to/file.py:function, got {spec!r}"
        raise SystemExit(msg)
    if mod_name.endswith(".py"):
        s = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
        if s is None or s.loader is None:
            msg = f"cannot import {mod_name}"
            raise SystemExit(msg)
        module = importlib.util.module_from_spec(s)
        s.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        msg = f"{mod_name} has no function {fn_name!r}"
        raise SystemExit(msg)
    return fn  # type: ignore[no-any-return]


def _arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        msg = f"--build-arg must be key=value, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fsm_trainer.replay CHECKPOINT --iters N --build module:function``."""
    p = argparse.ArgumentParser(prog="python -m fsm_trainer.replay", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint directory, latest file, or directory of checkpoints")
    p.add_argument("--iters", type=int, required=True, help="train iterations to replay")
    p.add_argument("--build", required=True, help="module:function returning run() keyword arguments")
    p.add_argument("--build-arg", type=_arg, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true", help="no log lines on stderr")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr, format="%(message)s")
    kwargs = _load_builder(args.build)(**dict(args.build_arg))
    kwargs.pop("table", None)

    def show(step: ReplayStep) -> None:
        s = step.state
        loss = step.loss if step.loss is None or math.isfinite(step.loss) else str(step.loss)
        print(json.dumps({"epoch": s.epoch, "iter": s.iter, "inner_iter": s.inner_iter, "loss": loss,
                          "log_vars": step.log_vars}, default=str), flush=True)

    replay(args.checkpoint, args.iters, on_step=show, **kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
