"""The promise, for real: a training process killed with SIGKILL (also inside a checkpoint write)
or preempted with SIGTERM, resumed until done, ends bit-identical to an uninterrupted run.

The interruptions hit processes running ``tests/_train_script.py``'s ``main``, forked from a
multiprocessing forkserver that imported torch once (a new interpreter per start would spend its
seconds importing torch; what a kill leaves on disk is the same). The last start, with nothing
left to interrupt, resumes in this process. ``python -m fsm_trainer`` processes, with their own
interpreter start, are killed in ``test_cli_kill_resume.py``."""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from fsm_trainer import TrainState, run

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import _torchrun  # noqa: E402
from _train_script import build, final_tensors, forked  # noqa: E402


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


def attempts(kind: str) -> list[list[str]]:
    """The interruptions of one chain: named kill points inside checkpoint writes, kills at
    seeded-random iterations, and a preemption by SIGTERM."""
    rnd = random.Random(f"kill-{kind}")
    a, b = sorted(rnd.sample(range(9, 28), 2))
    return [
        ["--fault", "before_rename:2"],  # dies with the 2nd checkpoint half-committed
        ["--kill-at", str(a)],
        ["--fault", "mid_tensors:1"],    # dies while writing tensors
        ["--term-at", str(b)],           # preempted: saves and exits 0
    ]


class Started:
    """One start of the script, forked: its process and where its stdout and stderr go."""

    def __init__(self, ctx: multiprocessing.context.ForkServerContext, work_dir: Path, kind: str,
                 extra: list[str], output: Path) -> None:
        self.output = str(output)
        argv = [str(work_dir), "--kind", kind, "--resume", *extra]
        self.process = ctx.Process(target=forked, args=(argv, self.output))
        self.process.start()

    def wait(self, timeout: float) -> tuple[int, str, str]:
        """Exit status (negative: killed by that signal), stdout, stderr."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
            pytest.fail(f"still running after {timeout} s")
        out, err = (Path(self.output + suffix).read_text() for suffix in (".out", ".err"))
        return self.process.exitcode, out, err


@pytest.fixture(scope="module")
def forkserver() -> multiprocessing.context.ForkServerContext:
    """A multiprocessing context whose server imports torch (and what an optimizer step imports) once."""
    return _torchrun.forkserver()


@pytest.mark.slow
def test_sigkill_and_sigterm_then_resume_is_bit_identical(tmp_path, forkserver):
    """Epoch-based and iter-based runs (with val phases) survive every interruption exactly."""
    kinds = ["epoch", "iter"]
    refs = {k: reference(k, tmp_path / f"ref-{k}") for k in kinds}
    plans = {k: attempts(k) for k in kinds}
    logs: dict[str, list[str]] = {k: [] for k in kinds}
    # The two chains run side by side (one process each at a time).
    for step in range(len(plans["epoch"])):
        starts = {k: Started(forkserver, tmp_path / k, k, plans[k][step], tmp_path / f"{k}-{step}") for k in kinds}
        for k, started in starts.items():
            extra = plans[k][step]
            code, out, err = started.wait(timeout=120)
            logs[k].append(f"{extra} -> {code}\n{err[-2000:]}")
            if "--term-at" in extra:
                assert code == 0, "\n".join(logs[k])
                assert json.loads(out.strip().splitlines()[-1])["stopped"] is True
                assert "stopped by SIGTERM" in err
            else:
                assert code == -signal.SIGKILL, "\n".join(logs[k])
    for k in kinds:
        # The last start, uninterrupted: resumed to the end here, as the script does without options.
        final, got = resume(k, tmp_path / k)
        assert final.stop is False, "\n".join(logs[k])
        assert got.keys() == refs[k].keys()
        for name, ref in refs[k].items():
            assert torch.equal(got[name], ref), (k, name, "\n".join(logs[k]))


@pytest.mark.slow
def test_sigkill_at_a_random_time(tmp_path, forkserver):
    """The parent kills the child at a random moment once it trains (maybe mid-write); resumed, it is exact."""
    ref = reference("iter", tmp_path / "ref")
    rnd = random.Random(7)
    work = tmp_path / "run"
    started = Started(forkserver, work, "iter", [], tmp_path / "run-output")
    deadline = time.monotonic() + 120
    while started.process.is_alive() and not work.exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # wait for the run to start
    time.sleep(rnd.uniform(0.0, 0.3))
    started.process.kill()
    code, _, err = started.wait(timeout=60)
    assert code in (-signal.SIGKILL, 0), err[-2000:]  # 0: it finished first
    _, got = resume("iter", work)
    for name, r in ref.items():
        assert torch.equal(got[name], r), name
