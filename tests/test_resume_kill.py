"""The promise, for real: a training process killed with SIGKILL (also inside a checkpoint write)
or preempted with SIGTERM, resumed until done, ends bit-identical to an uninterrupted run.
The interruptions hit processes of ``tests/_train_script.py``; the last start, with nothing left
to interrupt, resumes in this process."""

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

from fsm_trainer import TrainState, run
from fsm_trainer import checkpoint as C

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _train_script import build, final_tensors  # noqa: E402

SCRIPT = str(HERE / "_train_script.py")


def reference(kind: str, work_dir: Path) -> dict[str, torch.Tensor]:
    args = build(kind)
    table = args.pop("table")
    run(TrainState(), table, work_dir=work_dir, **args)
    return final_tensors(args)


def resume(kind: str, work_dir: Path) -> tuple[TrainState, dict[str, torch.Tensor]]:
    """The script's run with ``--resume`` and no interruption, in this process: its end state and tensors."""
    args = build(kind)
    table = args.pop("table")
    final = run(TrainState(), table, work_dir=work_dir, resume="auto", **args)
    return final, final_tensors(args)


def attempts(kind: str) -> list[tuple[list[str], dict[str, str]]]:
    """The interruptions of one chain: named kill points inside checkpoint writes, kills at
    seeded-random iterations, and a preemption by SIGTERM."""
    rnd = random.Random(f"kill-{kind}")
    a, b = sorted(rnd.sample(range(9, 28), 2))
    return [
        ([], {C.FAULT_ENV: "before_rename:2"}),         # dies with the 2nd checkpoint half-committed
        (["--kill-at", str(a)], {}),
        ([], {C.FAULT_ENV: "mid_tensors:1"}),           # dies while writing tensors
        (["--term-at", str(b)], {}),                    # preempted: saves and exits 0
    ]


def _start(work_dir: Path, kind: str, extra: list[str], env: dict[str, str]) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, SCRIPT, str(work_dir), "--kind", kind, "--resume", *extra],
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_and_sigterm_then_resume_is_bit_identical(tmp_path):
    """Epoch-based and iter-based runs (with val phases) survive every interruption exactly."""
    kinds = ["epoch", "iter"]
    refs = {k: reference(k, tmp_path / f"ref-{k}") for k in kinds}
    plans = {k: attempts(k) for k in kinds}
    logs: dict[str, list[str]] = {k: [] for k in kinds}
    # The two chains run side by side (one process each at a time).
    for step in range(len(plans["epoch"])):
        procs = {}
        for k in kinds:
            extra, env = plans[k][step]
            procs[k] = (_start(tmp_path / k, k, extra, env), extra, env)
        for k, (proc, extra, env) in procs.items():
            out, err = proc.communicate(timeout=120)
            logs[k].append(f"{extra} {env} -> {proc.returncode}\n{err[-2000:]}")
            if "--term-at" in extra:
                assert proc.returncode == 0, "\n".join(logs[k])
                assert json.loads(out.strip().splitlines()[-1])["stopped"] is True
                assert "stopped by SIGTERM" in err
            else:
                assert proc.returncode == -signal.SIGKILL, "\n".join(logs[k])
    for k in kinds:
        # The last start, uninterrupted: resumed to the end here, as the script does without options.
        final, got = resume(k, tmp_path / k)
        assert final.stop is False, "\n".join(logs[k])
        assert got.keys() == refs[k].keys()
        for name, ref in refs[k].items():
            assert torch.equal(got[name], ref), (k, name, "\n".join(logs[k]))


@pytest.mark.slow
def test_sigkill_at_a_random_time(tmp_path):
    """The parent kills the child at a random moment once it trains (maybe mid-write); resumed, it is exact."""
    ref = reference("iter", tmp_path / "ref")
    rnd = random.Random(7)
    work = tmp_path / "run"
    proc = _start(work, "iter", [], {})
    deadline = time.monotonic() + 120
    while proc.poll() is None and not work.exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # torch's import takes the first seconds: wait for the run to start
    time.sleep(rnd.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    _, got = resume("iter", work)
    for name, r in ref.items():
        assert torch.equal(got[name], r), name
