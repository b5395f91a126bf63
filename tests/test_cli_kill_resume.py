"""The user's path: ``fsm-trainer train CONFIG`` killed at random moments, resumed with ``--resume auto``.

Each shipped digits config (shortened, with a checkpoint after every few iterations so that
kills land anywhere: in LR warmup, mid-epoch, inside a checkpoint write, in a val phase) is
SIGKILLed at random moments and restarted with ``--resume auto`` until it finishes; the last
checkpoint (weights, optimizer state with its ``param_groups``, the state record) and the
logged learning rates of the last epoch or segment equal those of a run that never stopped.

The kills hit ``python -m fsm_trainer`` processes; the run that never stopped and the start
after the last kill run in this process (``tests/_cli.py``), on one thread as those processes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _cli import run_cli

from fsm_trainer.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "epoch": (ROOT / "configs" / "digits_mlp.py", [
        "runner.max_epochs=4", "data.samples_per_gpu=128", "lr_config.step=[2,3]", "lr_config.warmup_iters=15",
        "checkpoint_config.by_epoch=False", "checkpoint_config.interval=3", "checkpoint_config.max_keep_ckpts=3",
        "log_config.interval=2",
    ]),
    "iter": (ROOT / "configs" / "digits_mlp_iter.py", [
        "runner.max_iters=60", "workflow=[('train',20),('val',2)]", "lr_config.warmup_iters=15",
        "checkpoint_config.interval=3", "checkpoint_config.max_keep_ckpts=3", "log_config.interval=2",
    ]),
}

pytestmark = pytest.mark.slow


def _args(kind: str, work_dir: Path, *extra: str) -> list[str]:
    config, options = CASES[kind]
    return ["train", str(config), "--work-dir", str(work_dir), *extra, "--cfg-options", *options]


def _cmd(kind: str, work_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fsm_trainer", *_args(kind, work_dir, *extra)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1"}


def _checkpoints(work_dir: Path) -> int:
    return sum(1 for p in work_dir.glob("iter_*") if p.is_dir()) if work_dir.exists() else 0


def _lrs(work_dir: Path) -> list[tuple[int, int, float]]:
    out = []
    for log in sorted(work_dir.glob("*.log.json")):
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("mode") == "train" and "lr" in rec:
                out.append((rec["epoch"], rec["iter"], rec["lr"]))
    return out


def _final(work_dir: Path) -> tuple[dict, object, object]:
    ck = load_checkpoint(work_dir / (work_dir / "latest").read_text().strip())
    return ck.model, ck.optimizer, ck.state


def _same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("kind", list(CASES))
def test_killed_at_random_and_resumed_equals_uninterrupted(kind: str, tmp_path: Path) -> None:
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "killed"
    r = run_cli(*_args(kind, ref_dir), threads=1)  # OMP_NUM_THREADS=1, as the processes below
    assert r.returncode == 0, r.stderr[-3000:]
    rng = random.Random(kind)
    kills, finished = 0, False
    while kills < 3 and not finished:
        proc = subprocess.Popen(_cmd(kind, dir_, "--resume", "auto"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Wait for progress past what is saved, then kill at a random moment.
        seen = _checkpoints(dir_)
        deadline = time.monotonic() + 120
        while proc.poll() is None and _checkpoints(dir_) <= seen and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate(timeout=300)
        finished = proc.returncode == 0
        assert finished or proc.returncode == -signal.SIGKILL, err[-3000:]
    if not finished:  # the last start, with nothing left to kill: here, on one thread as the processes
        r = run_cli(*_args(kind, dir_, "--resume", "auto"), threads=1)
        assert r.returncode == 0, r.stderr[-3000:]
    assert kills >= 1
    model, optimizer, state = _final(dir_)
    ref_model, ref_optimizer, ref_state = _final(ref_dir)
    _same(ref_model, model)
    _same(ref_optimizer, optimizer)
    assert (state.epoch, state.iter, state.hook_states) == (ref_state.epoch, ref_state.iter, ref_state.hook_states)
    # The LR logged over the last epoch / segment follows the schedule, as in the run that never stopped.
    ref_lrs, lrs = _lrs(ref_dir), _lrs(dir_)
    tail = [x for x in ref_lrs if x[0] == ref_lrs[-1][0]] if kind == "epoch" else ref_lrs[-10:]
    assert set(tail) <= set(lrs)
