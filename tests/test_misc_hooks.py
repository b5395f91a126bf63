"""Small hooks: closure, empty cache, profiler, early stopping, the NaN guard, the trace."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hooks import (
    checkpoint_hook,
    closure_hook,
    early_stopping_hook,
    empty_cache_hook,
    eval_hook,
    nan_guard_hook,
    optimizer_hook,
    profiler_hook,
    trace_hook,
)
from fsm_trainer.hooks.misc import EarlyStopping, NonFiniteLossError
from fsm_trainer.hooks.trace import read_trace
from fsm_trainer.simulate import simulate
from fsm_trainer.testing import CountingLoader, noop_step


def test_closure_hook_runs_at_its_point():
    """closure_hook calls the function at its point; None keeps the state."""
    seen = []
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), data_loaders=[[0, 1]], train_step=noop_step,
        val_step=noop_step, hooks=[closure_hook("after_train_epoch", lambda s: seen.append(s.epoch))])
    assert seen == [0, 1]


def test_empty_cache_hook_runs_without_cuda():
    """EmptyCacheHook is harmless on a CPU-only machine, in both kinds of runs."""
    for table in (compile_workflow([("train", 1)], max_epochs=1), compile_workflow([("train", 1)], max_iters=2)):
        run(TrainState(), table, data_loaders=[[0]], train_step=noop_step, val_step=noop_step,
            hooks=[empty_cache_hook(before_epoch=True, after_iter=True)])


def test_profiler_writes_a_chrome_trace(tmp_path):
    """ProfilerHook profiles the first iterations and exports a Chrome trace."""
    model = nn.Linear(3, 1)
    path = tmp_path / "trace.json"
    run(TrainState(), compile_workflow([("train", 1)], max_iters=4), model=model, data_loaders=[[torch.ones(2, 3)]],
        train_step=lambda b: {"loss": model(b).sum()}, val_step=noop_step,
        hooks=[profiler_hook(profile_iters=2, json_trace_path=path)])
    assert "traceEvents" in json.loads(path.read_text())


def test_profiler_longer_than_the_run_is_rejected():
    """profile_iters beyond the run's length is an error before the run starts."""
    from fsm_trainer import HookError

    with pytest.raises(HookError, match="profile_iters=3"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), data_loaders=[[0]], train_step=noop_step,
            val_step=noop_step, hooks=[profiler_hook(profile_iters=3)])


def test_early_stopping_record_is_pure():
    """EarlyStopping.update returns new records and leaves the old one unchanged."""
    es0 = EarlyStopping(rule="greater", patience=1)
    es1 = es0.update(0.5)
    assert es0.best is None and es1.best == 0.5 and not es1.should_stop
    assert es1.update(0.4).should_stop and not es1.update(0.6).should_stop
    assert EarlyStopping(patience=1, best=1.0).update(math.nan).should_stop


def test_early_stopping_stops_after_patience_and_records_it():
    """With patience 2, the run stops at the second evaluation without improvement; after_run still runs."""
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.95])
    loader = [(torch.zeros(1, 2), torch.zeros(1))]
    ended = []
    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=6), model=nn.Identity(), data_loaders=[[0]],
                train_step=noop_step, val_step=noop_step,
                hooks=[eval_hook(loader, lambda o, t: {"accuracy": next(scores)}),
                       early_stopping_hook("accuracy", patience=2), closure_hook("after_run", ended.append)])
    assert final.stop and final.epoch == 4 and ended
    assert final.hook_states["EarlyStoppingHook"] == {"best": 0.7, "wait": 2, "stopped": True, "counted": {"epoch": 4}}


class Model(nn.Module):
    def __init__(self, losses):
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.losses = iter(losses)

    def train_step(self, batch, optimizer=None):
        target = next(self.losses)
        loss = (self.lin(torch.ones(1, 1)).sum() - 0) * 0 + target
        return {"loss": loss, "log_vars": {"loss": float(loss.detach())}, "num_samples": 1}

    val_step = train_step


def nan_run(tmp_path, action, losses=(1.0, 2.0, math.nan, 1.0), **kw):
    model = Model(losses)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    snapshots = []

    def snap(s):
        snapshots.append([p.detach().clone() for p in model.parameters()])
        return s

    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), model=model, optimizer=opt,
                data_loaders=[[0, 1]], work_dir=tmp_path,
                hooks=[checkpoint_hook(), optimizer_hook(), nan_guard_hook(action=action, **kw),
                       closure_hook("after_train_iter", snap, priority="LOWEST")])
    return final, before, snapshots


def test_nan_guard_stop_skips_the_step_and_names_iteration_and_checkpoint(tmp_path, caplog):
    """A NaN loss at iteration 3: no step on it, the run stops, the log names iteration 3 and epoch_1."""
    with caplog.at_level(logging.ERROR, logger="fsm_trainer"):
        final, _, snaps = nan_run(tmp_path, "stop")
    assert final.stop and final.iter == 3
    assert all(torch.equal(a, b) for a, b in zip(snaps[1], snaps[2], strict=True))  # the NaN step changed nothing
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "loss is nan at iteration 3 (epoch 2, batch 1)" in msg and str(tmp_path / "epoch_1") in msg
    kept = final.hook_states["NanGuardHook"]
    assert kept["stopped_at_iter"] == 2 and kept["last_good_checkpoint"] == str(tmp_path / "epoch_1")


def test_nan_guard_skip_goes_on(tmp_path):
    """action='skip' skips the bad step and trains on."""
    final, _, snaps = nan_run(tmp_path, "skip")
    assert not final.stop and final.iter == 4
    assert all(torch.equal(a, b) for a, b in zip(snaps[1], snaps[2], strict=True))
    assert final.hook_states["NanGuardHook"] == {"skipped": 1, "last_skipped_iter": 2}


def test_nan_guard_raise(tmp_path):
    """action='raise' raises NonFiniteLossError naming the iteration; inf counts too."""
    with pytest.raises(NonFiniteLossError, match="loss is inf at iteration 1"):
        nan_run(tmp_path, "raise", losses=(math.inf, 1.0, 1.0, 1.0))


@pytest.mark.parametrize("table", [
    compile_workflow([("train", 2), ("val", 1)], max_epochs=3),
    compile_workflow([("train", 3), ("val", 2)], max_iters=8),
])
def test_trace_equals_the_dry_run(tmp_path, table):
    """The trace file of a run has every point and state simulate() predicts."""
    path = tmp_path / "trace.jsonl"
    run(TrainState(), table, data_loaders=[CountingLoader(3), CountingLoader(2)], train_step=noop_step,
        val_step=noop_step, hooks=[trace_hook(path, outputs=False)])
    got = [(p, s.mode, s.epoch, s.iter, s.inner_iter, s.phase) for p, s in read_trace(path)]
    dry = [(p, s.mode, s.epoch, s.iter, s.inner_iter, s.phase) for p, s in simulate(table, [3, 2])]
    assert got == dry
    first = json.loads(path.read_text().splitlines()[0])
    assert first["seq"] == 0 and first["point"] == "before_run"


@pytest.mark.parametrize("by", ["epoch", "iter"])
def test_iter_timer_data_time_is_the_wait_for_the_batch_and_time_the_whole_iteration(
        by: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a clock that the loader advances by 1 per batch, a before hook by 100 and the step
    by 10: data_time is 101 (batch and before hooks), time 111, for train and val iterations."""
    from fsm_trainer import Hook
    from fsm_trainer.hooks import iter_timer_hook
    from fsm_trainer.hooks import timer as timer_module

    now = [0.0]
    monkeypatch.setattr(timer_module, "perf_counter", lambda: now[0])

    class Ticking:
        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

        def __iter__(self):
            for i in range(self.n):
                now[0] += 1.0
                yield i

    def step(batch: int) -> dict[str, object]:
        now[0] += 10.0
        return {}

    def before(s: TrainState) -> TrainState:
        now[0] += 100.0
        return s

    seen: dict[str, list[object]] = {}

    def probe(ctx):
        buf = ctx.log_buffer

        def after(s: TrainState) -> TrainState:
            seen.setdefault(s.mode, []).append((buf.values["data_time"][-1], buf.values["time"][-1]))
            return s

        return Hook("Probe", "LOWEST", {"after_train_iter": after, "after_val_iter": after})

    hooks = [iter_timer_hook(), probe,
             Hook("Slow", "HIGHEST", {"before_train_iter": before, "before_val_iter": before})]
    limit = {"max_epochs": 2} if by == "epoch" else {"max_iters": 4}
    run(TrainState(), compile_workflow([("train", 2), ("val", 1)], **limit), data_loaders=[Ticking(2), Ticking(2)],
        hooks=hooks, train_step=step, val_step=step, device=None)
    assert seen["train"] and seen["val"]
    assert all(v == (101.0, 111.0) for v in seen["train"] + seen["val"]), seen
