"""Checkpoints and shutdown under hostile timing: an overwrite killed between its two renames,
cleanup callbacks that fail, SIGTERM to a whole process group with DataLoader workers, and
checkpoints written at a point where the run was asked to stop."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer import checkpoint as C
from fsm_trainer.data import StopSignalsIgnored, ignore_stop_signals_in_workers
from fsm_trainer.hooks import checkpoint_hook
from fsm_trainer.testing import CountingLoader, noop_step, record_trace

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _train_script import build, final_tensors  # noqa: E402
from _workers import shut_down_loader_workers  # noqa: E402

ROOT = str(HERE.parent)


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path, **extra}


# --------------------------------------------------------------------------- 1. overwrite killed between renames

_TINY_RUN = """
import sys
from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hooks import checkpoint_hook
from fsm_trainer.testing import CountingLoader, noop_step
run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), data_loaders=[CountingLoader(3)],
    train_step=noop_step, val_step=noop_step, hooks=[checkpoint_hook(1)], work_dir=sys.argv[1],
    resume=sys.argv[2])
"""


def _tiny_run(work_dir: Path, trace: list[Any] | None = None, resume: str | Path | None = None) -> TrainState:
    hooks: list[Any] = [checkpoint_hook(1)]
    if trace is not None:
        hooks.append(record_trace(trace, points=("after_train_iter",)))
    return run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), data_loaders=[CountingLoader(3)],
               train_step=noop_step, val_step=noop_step, hooks=hooks, work_dir=work_dir, resume=resume)


def _displace(directory: Path, name: str) -> Path:
    """The layout a crash between the two renames of an overwrite of ``name`` leaves."""
    newer = directory.parent / f"{directory.name}-newer"
    C.save_checkpoint(newer, name, state=TrainState(epoch=7, phase=0, mode="train"),
                      table=compile_workflow([("train", 1)], max_epochs=2))
    old = directory / f"{name}.old-0123abcd4567"
    os.replace(directory / name, old)
    os.replace(newer / name, directory / f"{name}.tmp-89abcdef0123")
    shutil.rmtree(newer)
    return old


def test_displaced_checkpoint_is_found_and_restored(tmp_path):
    """A checkpoint moved to ``<name>.old-*`` by an interrupted overwrite is still the newest
    checkpoint for every reader, and cleanup_stale moves it back before removing leftovers."""
    _tiny_run(tmp_path)
    old = _displace(tmp_path, "epoch_2")
    assert not (tmp_path / "epoch_2").exists()
    assert C.list_checkpoints(tmp_path) == [old, tmp_path / "epoch_1"]
    assert C.find_latest(tmp_path).state.epoch == 2
    assert C.resolve_resume("auto", [tmp_path]).state.epoch == 2
    assert C.resolve_resume(tmp_path / "latest", [tmp_path]).state.epoch == 2
    assert C.resolve_resume(tmp_path / "epoch_2", [tmp_path]).state.epoch == 2
    assert C.load_checkpoint(tmp_path / "epoch_2").state.epoch == 2

    removed = C.cleanup_stale(tmp_path)
    assert [p.name for p in removed] == ["epoch_2.tmp-89abcdef0123"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1", "epoch_2", "latest"]
    C.verify(tmp_path / "epoch_2")
    assert C.load_checkpoint(tmp_path / "latest").state.epoch == 2


def test_displaced_copy_is_ignored_when_the_name_exists(tmp_path):
    """A crash after the second rename leaves ``<name>`` and its ``.old-*``: the new one wins."""
    _tiny_run(tmp_path)
    shutil.copytree(tmp_path / "epoch_1", tmp_path / "epoch_2.old-0123abcd4567")
    assert C.list_checkpoints(tmp_path) == [tmp_path / "epoch_2", tmp_path / "epoch_1"]
    assert C.cleanup_stale(tmp_path) == [tmp_path / "epoch_2.old-0123abcd4567"]
    assert C.load_checkpoint(tmp_path / "epoch_2").state.epoch == 2


def test_failed_overwrite_puts_the_committed_checkpoint_back(tmp_path, monkeypatch):
    """An I/O error on the second rename leaves ``<name>`` as it was."""
    _tiny_run(tmp_path)
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if ".tmp-" in str(src):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(C.CheckpointWriteError):
        C.save_checkpoint(tmp_path, "epoch_2", state=TrainState(epoch=9), table=compile_workflow([("train", 1)],
                                                                                               max_epochs=2))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1", "epoch_2", "latest"]
    assert C.load_checkpoint(tmp_path / "epoch_2").state.epoch == 2


@pytest.mark.slow
def test_kill_between_the_renames_of_an_overwrite_then_resume(tmp_path):
    """SIGKILL between moving the committed ``epoch_2`` aside and renaming its replacement in:
    the next run resumes from ``epoch_2`` (not ``epoch_1``), and cleanup restores it."""
    _tiny_run(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _TINY_RUN, str(tmp_path), str(tmp_path / "epoch_1")],
                          env=_env(**{C.FAULT_ENV: "between_renames:1"}), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (tmp_path / "epoch_2").exists()
    assert any(".old-" in p.name for p in tmp_path.iterdir())

    trace: list[Any] = []
    final = _tiny_run(tmp_path, trace, resume="auto")
    assert trace == []  # resumed after epoch 2: nothing left to train
    assert final.epoch == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1", "epoch_2", "latest"]
    assert C.load_checkpoint(tmp_path / "latest").state.epoch == 2


# --------------------------------------------------------------------------- 2. cleanup callbacks


def _exits(calls: list[str], *, fail: int = 1) -> Any:
    """A hook factory whose ``before_run`` (after the checkpoint hook's) registers a recording
    callback and then ``fail`` raising ones, which run first."""

    def factory(ctx: Any) -> Hook:
        def before_run(s: TrainState) -> TrainState:
            ctx.on_exit.append(lambda: calls.append("recorder"))
            for i in range(fail):
                def boom(i: int = i) -> None:
                    calls.append(f"boom{i}")
                    msg = f"cleanup {i} failed"
                    raise ValueError(msg)

                ctx.on_exit.append(boom)
            return s

        return Hook("Exits", "LOWEST", {"before_run": before_run})

    return factory


def test_training_error_wins_and_every_callback_runs(tmp_path):
    """The step's error is raised with the cleanup error noted; the checkpoint hook's signal
    handlers are uninstalled although a callback registered after them failed."""
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    calls: list[str] = []

    def step(batch: Any) -> dict[str, Any]:
        if batch == 1:
            msg = "training failed"
            raise RuntimeError(msg)
        return noop_step(batch)

    with pytest.raises(RuntimeError, match="training failed") as info:
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[CountingLoader(3)],
            train_step=step, val_step=noop_step, hooks=[checkpoint_hook(1), _exits(calls, fail=2)], work_dir=tmp_path)
    assert calls == ["boom1", "boom0", "recorder"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    if sys.version_info >= (3, 11):
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert "cleanup 0 failed" in notes and "cleanup 1 failed" in notes


def test_cleanup_error_is_raised_after_every_callback_of_a_successful_run(tmp_path):
    calls: list[str] = []
    with pytest.raises(ValueError, match="cleanup 0 failed") as info:
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[CountingLoader(2)],
            train_step=noop_step, val_step=noop_step, hooks=[_exits(calls, fail=2)], work_dir=tmp_path)
    assert calls == ["boom1", "boom0", "recorder"]
    assert isinstance(info.value.__context__, ValueError) and "cleanup 1" in str(info.value.__context__)


# --------------------------------------------------------------------------- 3. workers and SIGTERM


def _mark_init(worker_id: int) -> None:
    os.environ["FSM_TEST_WORKER_INIT"] = str(worker_id)


class _SignalProbe(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> list[Any]:
        return [signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []),
                signal.getsignal(signal.SIGINT) == signal.SIG_IGN, os.environ.get("FSM_TEST_WORKER_INIT")]


def test_workers_ignore_stop_signals_and_run_the_original_init():
    loader = torch.utils.data.DataLoader(_SignalProbe(), batch_size=None, num_workers=1, worker_init_fn=_mark_init,
                                         multiprocessing_context="fork")
    assert ignore_stop_signals_in_workers(loader) is True
    assert ignore_stop_signals_in_workers(loader) is False  # wrapped once
    wrapper = loader.worker_init_fn
    assert isinstance(wrapper, StopSignalsIgnored) and wrapper.fn is _mark_init
    clone = pickle.loads(pickle.dumps(wrapper))  # what the spawn start method does
    assert isinstance(clone, StopSignalsIgnored) and clone.fn is _mark_init
    assert list(loader) == [[True, True, "0"], [True, True, "0"]]
    assert ignore_stop_signals_in_workers(torch.utils.data.DataLoader(_SignalProbe())) is False  # no workers
    assert ignore_stop_signals_in_workers([1, 2]) is False


_GROUP_SIGTERM = """
import signal, sys, torch
from fsm_trainer.data import ignore_stop_signals_in_workers
signal.signal(signal.SIGTERM, signal.SIG_IGN)
loader = torch.utils.data.DataLoader(list(range(40)), batch_size=2, num_workers=2)
ignore_stop_signals_in_workers(loader)
it = iter(loader)
print([next(it).tolist() for _ in range(2)], flush=True)  # both workers have started
sys.stdin.readline()
print(sum(len(b) for b in it), flush=True)
it = iter(loader)  # alive at exit: multiprocessing terminates its workers
next(it)
"""


@pytest.mark.slow
def test_workers_survive_a_group_sigterm_and_still_end_at_exit():
    """SIGTERM from outside (to the whole group) leaves the workers serving; the SIGTERM their
    owner sends when it exits still ends them, so the exit does not hang."""
    proc = subprocess.Popen([sys.executable, "-c", _GROUP_SIGTERM], env=_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "[[0, 1], [2, 3]]"
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        out, err = proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert out.split() == ["36"]
    assert "Error" not in err, err[-3000:]


@pytest.mark.parametrize("preempt", [True, False])
def test_checkpoint_hook_shields_workers_only_with_preempt(tmp_path, preempt):
    loader = torch.utils.data.DataLoader(list(range(4)), batch_size=2, num_workers=1)
    run(TrainState(), compile_workflow([("train", 1)], max_iters=2), data_loaders=[loader], train_step=noop_step,
        val_step=noop_step, hooks=[checkpoint_hook(1, preempt=preempt)], work_dir=tmp_path)
    assert isinstance(loader.worker_init_fn, StopSignalsIgnored) is preempt


_WAIT_FOR_SIGNAL = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from _train_script import build
from fsm_trainer import Hook, TrainState, run

work = Path(sys.argv[1])

def wait(s):
    if s.iter == 5:
        (work / "ready").write_text("")
        deadline = time.monotonic() + 60
        while not (work / "sent").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return s

kw = build("iter", workers=2)
kw["hooks"].append(Hook("WaitForSignal", "HIGHEST", {"before_train_iter": wait}))
table = kw.pop("table")
final = run(TrainState(), table, work_dir=work, **kw)
print(json.dumps({"stopped": final.stop, "iter": final.iter}))
"""


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_workers_saves_then_resume_is_exact(tmp_path):
    """``kill -- -PGID`` reaches the DataLoader workers of an iter-based run (started before
    ``before_run``) too: the run still finishes its iteration, saves, exits 0, and resumes."""
    ref = build("iter")
    table = ref.pop("table")
    run(TrainState(), table, work_dir=tmp_path / "ref", **ref)
    expected = final_tensors(ref)

    work = tmp_path / "run"
    work.mkdir()
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", _WAIT_FOR_SIGNAL, str(work), str(HERE)], env=_env(),
                                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while not (work / "ready").exists():
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
                time.sleep(0.05)
            time.sleep(0.2)
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(0.5)  # let the workers die of it, if they do
            (work / "sent").write_text("")
            out, _ = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    log = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"stopped": True, "iter": 6}
    assert "stopped by SIGTERM" in log
    assert C.load_checkpoint(work / "latest").state.iter == 6

    # Resumed here (no signal involved): as the script with --resume does, in this process.
    again = build("iter", workers=2)
    table = again.pop("table")
    try:
        final = run(TrainState(), table, work_dir=work, resume="auto", **again)
    finally:
        shut_down_loader_workers()
    assert not final.stop and final.iter == 30
    got = final_tensors(again)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(got[name], value), name


# --------------------------------------------------------------------------- 4. saves where a stop was requested


def _stop_at(point: str, when: Any) -> Hook:
    """Ask the run to stop at ``point`` when ``when(state)`` (an external stop: a deadline...)."""
    return Hook("StopHere", "NORMAL", {point: lambda s: s.request_stop() if when(s) else s})


@pytest.mark.parametrize(
    ("kind", "point", "when", "ckpt"),
    [
        ("epoch", "after_train_iter", lambda s: s.iter == 7, "iter_8"),
        ("epoch", "after_train_iter", lambda s: s.iter == 19, "iter_20"),  # the last batch of epoch 1
        ("epoch", "after_train_epoch", lambda s: s.epoch == 0, "epoch_1"),
        ("iter", "after_train_iter", lambda s: s.iter == 11, "iter_12"),
        ("iter", "after_train_iter", lambda s: s.iter == 27, "iter_28"),  # the last of a train segment
    ],
)
def test_checkpoint_saved_at_a_stop_resumes_exactly(tmp_path, kind, point, when, ckpt):
    """The saved state is the position to continue from (``stop`` unset): resumed from it, the
    run ends bit-identical to one that never stopped."""
    ref = build(kind)
    table = ref.pop("table")
    run(TrainState(), table, work_dir=tmp_path / "ref", **ref)
    expected = final_tensors(ref)

    first = build(kind)
    table = first.pop("table")
    first["hooks"].append(_stop_at(point, when))
    stopped = run(TrainState(), table, work_dir=tmp_path / "run", **first)
    assert stopped.stop
    ck = C.load_checkpoint(tmp_path / "run" / ckpt)
    assert ck.state.stop is False

    again = build(kind)
    table = again.pop("table")
    final = run(TrainState(), table, work_dir=tmp_path / "run", resume=tmp_path / "run" / ckpt, **again)
    assert not final.stop
    got = final_tensors(again)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
