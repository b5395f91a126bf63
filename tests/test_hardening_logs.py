"""Loggers of different intervals, early stopping and the best checkpoint across a resume."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hook import Hook
from fsm_trainer.hooks import checkpoint_hook, eval_hook, logger_hook
from fsm_trainer.hooks.eval import eval_state
from fsm_trainer.hooks.logger_base import writer
from fsm_trainer.hooks.misc import closure_hook, early_stopping_hook
from fsm_trainer.logbuffer import LogBuffer
from fsm_trainer.testing import noop_step

LOADER_LEN = 19
LOGGERS = (("every2", 2, False), ("every3", 3, True))  # (name, interval, ignore_last), in call order


def step(batch):
    """Per-batch log_vars: ``aux`` only every fourth batch, unequal ``num_samples``."""
    log_vars = {"loss": math.sin(batch + 1.0) + 2.0}
    if batch % 4 == 0:
        log_vars["aux"] = float(batch * batch % 7)
    return {"log_vars": log_vars, "num_samples": 1 + batch % 3}


def log_run(tmp_path, table, resume=None):
    """A run with the two loggers, a checkpoint every 7 iterations and a spy on each iteration's log_vars."""
    records, iters = [], []

    def spy(s):
        iters.append((s.epoch, s.inner_iter, s.iter, dict(s.outputs["log_vars"]), s.outputs["num_samples"]))

    hooks = [checkpoint_hook(interval=7, by_epoch=False), closure_hook("after_train_iter", spy)]
    for name, interval, ignore_last in LOGGERS:
        hooks.append(logger_hook(lambda ctx, by_epoch, name=name: writer(
            lambda s, r: records.append((name, r.step, dict(r.values)))),
            name=name, interval=interval, ignore_last=ignore_last))
    run(TrainState(), table, data_loaders=[list(range(LOADER_LEN))], train_step=step, val_step=noop_step,
        hooks=hooks, work_dir=tmp_path, resume=resume)
    return records, iters


def mmcv_logs(iters, by_epoch):
    """What mmcv 1.7.2's LoggerHooks log: its LogBuffer (whole histories) and LoggerHook rules, by hand."""
    hist, nums = defaultdict(list), defaultdict(list)
    output, ready, epoch = {}, False, None
    logged = []
    for ep, inner, it, log_vars, n in iters:
        if epoch is None or (by_epoch and ep != epoch):  # before_epoch: clear()
            hist.clear()
            nums.clear()
            output, ready = {}, False
        epoch = ep
        for k, v in log_vars.items():
            hist[k].append(v)
            nums[k].append(n)
        for i, (name, interval, ignore_last) in enumerate(LOGGERS):
            count = inner + 1 if by_epoch else it + 1
            if count % interval == 0 or (not ignore_last and inner + 1 == LOADER_LEN):
                for k in hist:
                    vs, cs = hist[k][-interval:], nums[k][-interval:]
                    output[k] = sum(v * c for v, c in zip(vs, cs, strict=True)) / sum(cs)
                ready = True
            if ready:
                logged.append((name, it + 1, dict(output)))
                if i == len(LOGGERS) - 1:  # mmcv forces reset_flag on the last logger
                    output, ready = {}, False
    return logged


def same(a, b):
    assert [(n, st, sorted(v)) for n, st, v in a] == [(n, st, sorted(v)) for n, st, v in b]
    for (_, _, va), (_, _, vb) in zip(a, b, strict=True):
        assert va == pytest.approx(vb, rel=1e-12)


TABLES = {
    "epoch": lambda: compile_workflow([("train", 1)], max_epochs=3),
    "iter": lambda: compile_workflow([("train", 1)], max_iters=3 * LOADER_LEN),
}


@pytest.mark.parametrize("kind", ["epoch", "iter"])
def test_two_loggers_log_mmcv_averages(tmp_path, kind):
    """Loggers at intervals 2 and 3 log what mmcv's would, computed from the run's own log_vars."""
    records, iters = log_run(tmp_path, TABLES[kind]())
    assert len(iters) == 3 * LOADER_LEN
    expected = mmcv_logs(iters, by_epoch=kind == "epoch")
    assert {n for n, _, _ in expected} == {"every2", "every3"}
    same(records, expected)


@pytest.mark.parametrize("kind", ["epoch", "iter"])
@pytest.mark.parametrize("at", [7, 28, 35])
def test_resume_mid_interval_logs_the_same_averages(tmp_path, kind, at):
    """Resumed mid-interval of both loggers, the run logs what the uninterrupted one logged from there on."""
    full, full_iters = log_run(tmp_path / "a", TABLES[kind]())
    resumed, iters = log_run(tmp_path / "b", TABLES[kind](), resume=tmp_path / "a" / f"iter_{at}")
    assert iters[0][2] == at and iters == full_iters[at:]
    same(resumed, [r for r in full if r[1] > at])
    same(resumed, [r for r in mmcv_logs(full_iters, by_epoch=kind == "epoch") if r[1] > at])


def test_buffer_keeps_the_largest_interval_only():
    """The histories stay bounded by the largest kept interval, and averages over it stay exact."""
    b = LogBuffer()
    b.keep(2)
    b.keep(5)
    for v in range(1, 1001):
        b.update({"loss": float(v)}, 1)
        b.average(2)
        assert len(b.values["loss"]) < 2 * 5
        if v % 5 == 0:
            b.average(5)
            assert b.output["loss"] == v - 2
    with pytest.raises(ValueError, match="n must be > 0"):
        b.keep(0)


# --------------------------------------------------------------------------- early stopping across a resume


class Identity(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x


SCORES = {0: 0.5, 1: 0.5, 2: 0.7, 3: 0.6, 4: 0.65, 5: 0.9, 6: 0.95}


def stopping_run(tmp_path, resume=None, max_epochs=6, scores=SCORES, **eval_kw):
    """Eval every epoch (score by epoch), early stopping with patience 2, a checkpoint every epoch."""
    epoch = [0]
    model = Identity()
    loader = [(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))]

    def note(s):
        epoch[0] = s.epoch + 1

    def note_start(s):
        epoch[0] = s.epoch

    ctxs = []

    def peek(ctx):
        ctxs.append(ctx)
        return Hook("Peek", "LOWEST", {})

    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=max_epochs), model=model,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data_loaders=[[0, 1]],
                train_step=noop_step, val_step=noop_step, work_dir=tmp_path, resume=resume,
                hooks=[checkpoint_hook(), closure_hook("after_train_epoch", note, priority="HIGH"),
                       closure_hook("before_train_epoch", note_start, priority="HIGH"),
                       eval_hook(loader, lambda o, t: {"accuracy": scores[epoch[0]]}, **eval_kw),
                       early_stopping_hook("accuracy", patience=2), peek])
    return final, ctxs[0]


def test_early_stopping_does_not_count_the_restored_evaluation_again(tmp_path):
    """Resumed after the third evaluation, the run stops where the uninterrupted one stopped, in the same state."""
    full, _ = stopping_run(tmp_path / "a")
    assert full.stop and (full.epoch, full.iter) == (4, 8)
    resumed, _ = stopping_run(tmp_path / "b", resume=tmp_path / "a" / "epoch_3")
    assert resumed.stop and (resumed.epoch, resumed.iter, resumed.inner_iter) == (
        full.epoch, full.iter, full.inner_iter)
    assert resumed.hook_states["EarlyStoppingHook"] == full.hook_states["EarlyStoppingHook"]
    assert resumed.hook_states["EvalHook"] == full.hook_states["EvalHook"]
    assert full.hook_states["EarlyStoppingHook"]["counted"] == {"epoch": 4}


def test_early_stopping_ignores_the_evaluation_repeated_after_a_resume(tmp_path):
    """An eval hook with ``start`` evaluates again when resumed (mmcv); that repeat is not a new evaluation."""
    full, _ = stopping_run(tmp_path / "a", start=1)
    resumed, _ = stopping_run(tmp_path / "b", resume=tmp_path / "a" / "epoch_3", start=1)
    assert (resumed.epoch, resumed.iter) == (full.epoch, full.iter) == (4, 8)
    assert resumed.hook_states["EarlyStoppingHook"] == full.hook_states["EarlyStoppingHook"]


# --------------------------------------------------------------------------- the best checkpoint of another work dir


def test_resume_into_another_work_dir_keeps_the_resumed_runs_best(tmp_path):
    """--work-dir B --resume A/epoch_3: B's new bests never remove A's best checkpoint."""
    rising = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4, 5: 0.5}
    a, b = tmp_path / "a", tmp_path / "b"
    stopping_run(a, max_epochs=3, scores=rising, save_best="accuracy")
    assert (a / "best_accuracy_epoch_3").is_dir()
    final, ctx = stopping_run(b, resume=a / "epoch_3", max_epochs=5, scores=rising, save_best="accuracy")
    assert (a / "best_accuracy_epoch_3").is_dir()
    assert sorted(p.name for p in b.iterdir() if p.name.startswith("best_")) == ["best_accuracy_epoch_5"]
    assert eval_state(final)["best_ckpt"] == "best_accuracy_epoch_5"
    assert ctx.meta["hook_msgs"]["best_ckpt"] == str(b / "best_accuracy_epoch_5")


def test_a_full_best_path_into_another_directory_is_never_removed(tmp_path):
    """A state saved with a full best_ckpt path (older checkpoints) removes nothing outside the run's directory."""
    other = tmp_path / "other" / "best_accuracy_epoch_1"
    other.mkdir(parents=True)
    (other / "keep.txt").write_text("x")
    kept = {"key": "accuracy", "rule": "greater", "best_score": 0.0, "best_ckpt": str(other), "best_at": 1}
    work = tmp_path / "b"
    model = Identity()
    loader = [(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))]
    run(TrainState(epoch=1, iter=1).with_hook_state("EvalHook", kept), compile_workflow([("train", 1)], max_epochs=2),
        model=model, data_loaders=[[0]], train_step=noop_step, val_step=noop_step, work_dir=work,
        hooks=[eval_hook(loader, lambda o, t: {"accuracy": 1.0}, save_best="accuracy")])
    assert (other / "keep.txt").exists() and (work / "best_accuracy_epoch_2").is_dir()
