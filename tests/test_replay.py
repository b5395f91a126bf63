"""replay(checkpoint, iters=N) reproduces the original run's losses exactly, in-process and by CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fsm_trainer import Hook, TrainState, run
from fsm_trainer.replay import replay

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _train_script import build  # noqa: E402


def original_losses(kind: str, work_dir: Path) -> dict[int, float]:
    """Train with checkpoints; return {iter: loss} of every train iteration."""
    losses: dict[int, float] = {}

    def rec(s: TrainState) -> TrainState:
        losses[s.iter] = s.outputs["loss"].item()
        return s

    args = build(kind, max_keep=-1)
    args["hooks"].append(Hook("Losses", "LOWEST", {"after_train_iter": rec}))
    table = args.pop("table")
    run(TrainState(), table, work_dir=work_dir, **args)
    return losses


@pytest.mark.parametrize(("kind", "ckpt"), [("epoch", "iter_8"), ("epoch", "epoch_2"), ("iter", "iter_12")])
def test_replay_reproduces_losses(tmp_path, kind, ckpt):
    """Replaying N iterations from a checkpoint gives the original losses of those iterations,
    across epoch and val boundaries, with the states' counters of the original run."""
    losses = original_losses(kind, tmp_path)
    args = build(kind, checkpoints=False, logger=False)
    args.pop("table")
    steps = replay(tmp_path / ckpt, 9, **args)
    first = steps[0].state.iter
    assert len(steps) == 9
    assert [s.state.iter for s in steps] == list(range(first, first + 9))
    assert [s.loss for s in steps] == [losses[i] for i in range(first, first + 9)]


def test_replay_stops_at_the_end_of_the_run(tmp_path):
    """Asking for more iterations than remain returns the remaining ones."""
    original_losses("iter", tmp_path)
    args = build("iter", checkpoints=False, logger=False)
    args.pop("table")
    assert len(replay(tmp_path / "iter_24", 100, **args)) == 6


def test_replay_cli(tmp_path, capsys):
    """python -m fsm_trainer.replay CKPT --iters N --build file.py:build prints the same losses
    (its ``main``, in this process)."""
    from fsm_trainer.replay import main

    losses = original_losses("iter", tmp_path)
    code = main([str(tmp_path / "iter_20"), "--iters", "4", "--build", f"{HERE / '_train_script.py'}:build",
                 "--build-arg", 'kind="iter"', "--build-arg", "checkpoints=false", "--build-arg", "logger=false",
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert [x["iter"] for x in lines] == [20, 21, 22, 23]
    assert [x["loss"] for x in lines] == [losses[i] for i in range(20, 24)]
