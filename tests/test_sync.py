"""No host sync per iteration: tensors in log_vars, the log buffer reading them back at logging points,
the NaN guard checking on the device."""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.checkpoint import load_checkpoint
from fsm_trainer.hooks import checkpoint_hook, closure_hook, nan_guard_hook, optimizer_hook, text_logger_hook
from fsm_trainer.hooks.logger_base import logger_hook, writer
from fsm_trainer.hooks.misc import NonFiniteLossError
from fsm_trainer.logbuffer import LogBuffer, LogValueError
from fsm_trainer.step import loss_fn_step

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sync.py"


def _bench_sync():
    spec = importlib.util.spec_from_file_location("bench_sync", _BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- the shipped path


def test_no_sync_between_logging_points():
    """The digits-like model with the shipped hooks: 0 syncs on every non-logging iteration, and
    one batched read-back (a single tolist) at each logging point."""
    bench = _bench_sync()
    per_iter = bench.count_syncs(iters=120, interval=40)
    assert len(per_iter) == 120
    quiet = {i: c for i, c in enumerate(per_iter) if (i + 1) % 40 and c}
    assert quiet == {}
    assert [per_iter[i] for i in (39, 79, 119)] == [{"tolist": 1}] * 3


def test_counting_syncs_sees_item_and_restores_the_methods():
    bench = _bench_sync()
    t = torch.tensor(1.5)
    with bench.counting_syncs() as counts:
        t.item()
        float(t)
        bool(t)
        t.tolist()
    assert counts == {"item": 1, "__float__": 1, "__bool__": 1, "tolist": 1}
    assert all(getattr(torch.Tensor, n).__name__ != "wrapper" for n in bench.SYNC_METHODS)
    assert "item" not in torch.Tensor.__dict__ and "tolist" not in torch.Tensor.__dict__


def test_loss_fn_step_logs_the_detached_loss_tensor():
    model = nn.Linear(2, 1)
    out = loss_fn_step(model, nn.functional.mse_loss)((torch.ones(3, 2), torch.zeros(3, 1)))
    lv = out["log_vars"]["loss"]
    assert isinstance(lv, torch.Tensor) and not lv.requires_grad and lv.dim() == 0
    assert lv.item() == out["loss"].item()


def test_grad_clip_logs_the_norm_as_a_tensor_read_back_at_logging():
    """grad_norm goes into the buffer as a tensor; the logged record holds a float."""
    bench = _bench_sync()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(6)]
    records = []
    spy = logger_hook(lambda ctx, by_epoch: writer(lambda s, r: records.append(dict(r.values))), name="Spy",
                      interval=3)
    per_iter = []

    def mark(s):
        per_iter.append(sum(counts.values()))
        return s

    with bench.counting_syncs() as counts:
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=model, optimizer=opt,
            data_loaders=[batches], loss_fn=nn.functional.mse_loss,
            hooks=[optimizer_hook(dict(max_norm=10.0)), spy, closure_hook("after_train_iter", mark,
                                                                           priority="LOWEST")])
    assert per_iter == [0, 0, 1, 1, 1, 2]  # one read-back at each logging point (iterations 3 and 6)
    assert len(records) == 2 and all(isinstance(v, float) for r in records for v in r.values())
    assert set(records[0]) == {"loss", "grad_norm"}


# --------------------------------------------------------------------------- the log buffer


def test_log_buffer_averages_tensors_as_their_items():
    vals = [0.1, 0.7, 1 / 3, 2.5]
    floats, tensors = LogBuffer(), LogBuffer()
    for i, v in enumerate(vals):
        floats.update({"loss": torch.tensor(v).item(), "n": i}, i + 1)
        tensors.update({"loss": torch.tensor(v), "n": torch.tensor(i)}, torch.tensor(i + 1))
    for n in (2, 0):
        floats.average(n)
        tensors.average(n)
        assert tensors.output == floats.output
    assert tensors.values == floats.values and tensors.counts == floats.counts
    assert all(type(v) is int for v in tensors.values["n"])


def test_log_buffer_reads_back_only_pending_tensors_once():
    b = LogBuffer()
    b.keep(2)
    t = torch.tensor(3.0)
    b.update({"loss": t})
    b.update({"loss": 1.0})
    b.average(2)
    assert b.values["loss"] == [3.0, 1.0] and b.output["loss"] == 2.0
    b.update({"loss": torch.tensor(5.0)})
    assert isinstance(b._values["loss"][-1], torch.Tensor)
    assert b.values["loss"][-1] == 5.0  # reading values reads the pending tensor back
    assert not b.empty
    b.clear()
    assert b.empty and b.values == {}


def test_log_buffer_rejects_a_tensor_of_several_values():
    b = LogBuffer()
    b.update({"loss": torch.ones(3)})
    with pytest.raises(LogValueError, match="'loss' must be a number or a one-element tensor, got shape"):
        b.average()


def test_checkpoint_stores_the_buffer_as_numbers(tmp_path):
    """A checkpoint saved between logging points holds the pending tensors as plain numbers."""
    model = nn.Linear(2, 1)
    batches = [(torch.randn(4, 2), torch.randn(4, 1)) for _ in range(3)]
    run(TrainState(), compile_workflow([("train", 1)], max_iters=5), model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data_loaders=[batches],
        loss_fn=nn.functional.mse_loss, work_dir=tmp_path,
        hooks=[optimizer_hook(), text_logger_hook(4), checkpoint_hook(2, by_epoch=False)])
    ck = load_checkpoint(tmp_path / "iter_2")
    assert all(type(v) is float for v in ck.log_buffer["values"]["loss"])
    assert isinstance(ck.state.outputs["log_vars"]["loss"], float)


# --------------------------------------------------------------------------- the NaN guard on the device


class TensorLosses(nn.Module):
    """Batch ``i`` (an int) gives loss ``losses[i]`` as a tensor in log_vars, as the shipped steps log."""

    def __init__(self, losses):
        super().__init__()
        self.lin = nn.Linear(1, 1)
        self.losses = losses

    def train_step(self, batch, optimizer=None):
        loss = self.lin(torch.ones(1, 1)).sum() * 0 + self.losses[batch]
        return {"loss": loss, "log_vars": {"loss": loss.detach()}, "num_samples": 1}

    val_step = train_step


def guard_run(tmp_path, losses, table, *, resume=None, ckpt=None, **kw):
    model = TensorLosses(losses)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = []
    hooks = [optimizer_hook(), nan_guard_hook(**kw),
             closure_hook("after_train_iter", lambda s: seen.append(s.outputs["loss"].grad_fn is not None),
                          priority="LOWEST")]
    if ckpt is not None:
        hooks.append(ckpt)
    n = len(losses) if table.by == "iter" else len(losses) // table.max_epochs
    loader = list(range(len(losses)))[:n] if table.by == "epoch" else list(range(len(losses)))
    final = run(TrainState(), table, model=model, optimizer=opt, data_loaders=[loader], work_dir=tmp_path,
                hooks=hooks, resume=resume)
    return final, seen


def test_nan_guard_finds_a_tensor_nan_at_the_next_check(tmp_path, caplog):
    """interval=4, NaN at iteration 6: found at iteration 8; the span 5..8 is named; iteration 8's step is
    skipped; the last good checkpoint is the one saved before iteration 5."""
    losses = [1.0] * 5 + [math.nan] + [1.0] * 6
    table = compile_workflow([("train", 1)], max_iters=12)
    with caplog.at_level(logging.ERROR, logger="fsm_trainer"):
        final, stepped = guard_run(tmp_path, losses, table, interval=4,
                                   ckpt=checkpoint_hook(3, by_epoch=False))
    assert final.stop and final.iter == 8
    assert stepped == [True] * 7 + [False]  # only the checking iteration's step is skipped
    kept = final.hook_states["NanGuardHook"]
    assert kept["stopped_at_iter"] == 7 and kept["first_iter"] == 4 and kept["key"] == "loss"
    assert kept["last_good_checkpoint"] == str(tmp_path / "iter_3")
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "loss was non-finite at an iteration from 5 to 8" in msg and str(tmp_path / "iter_3") in msg


def test_nan_guard_checks_at_the_end_of_an_epoch(tmp_path):
    """A NaN in the last batches of an epoch is found when the epoch ends, whatever the interval."""
    losses = [1.0, 1.0, math.inf, 1.0, 1.0, 1.0]
    final, stepped = guard_run(tmp_path, losses, compile_workflow([("train", 1)], max_epochs=2), interval=50)
    assert final.stop and final.epoch == 1 and final.iter == 3
    assert stepped == [True] * 3
    assert final.hook_states["NanGuardHook"]["first_iter"] == 0


def test_nan_guard_raise_on_tensors(tmp_path):
    with pytest.raises(NonFiniteLossError, match="from 1 to 2"):
        guard_run(tmp_path, [math.nan, 1.0, 1.0, 1.0], compile_workflow([("train", 1)], max_iters=4),
                  action="raise", interval=2)


@pytest.mark.parametrize("kw", [{"action": "skip"}, {"action": "stop", "interval": 1}])
def test_nan_guard_reads_tensors_each_iteration_for_skip_and_interval_1(tmp_path, kw):
    """'skip' (and interval=1) read tensors at once: the step of the NaN iteration itself is skipped."""
    losses = [1.0, math.nan, 1.0, 1.0]
    final, stepped = guard_run(tmp_path, losses, compile_workflow([("train", 1)], max_iters=4), **kw)
    assert stepped[1] is False and all(stepped[:1])
    if kw["action"] == "skip":
        assert final.hook_states["NanGuardHook"] == {"skipped": 1, "last_skipped_iter": 1}
    else:
        assert final.stop and final.hook_states["NanGuardHook"]["stopped_at_iter"] == 1


def test_nan_guard_finds_the_same_after_a_resume_inside_the_span(tmp_path):
    """A checkpoint saved while a NaN is pending: the resumed run reports what the full run reports."""
    losses = [1.0, math.nan] + [1.0] * 6
    table = compile_workflow([("train", 1)], max_iters=8)
    full, _ = guard_run(tmp_path / "a", losses, table, interval=4, ckpt=checkpoint_hook(1, by_epoch=False))
    resumed, stepped = guard_run(tmp_path / "b", losses, table, interval=4, resume=tmp_path / "a" / "iter_2")
    assert full.stop and resumed.stop and full.iter == resumed.iter == 4
    assert resumed.hook_states["NanGuardHook"] == full.hook_states["NanGuardHook"]
    assert full.hook_states["NanGuardHook"]["first_iter"] == 0
    assert stepped == [True, False]  # iterations 3 and 4 ran; 4 checked and skipped


def test_nan_guard_interval_is_validated():
    with pytest.raises(ValueError, match="interval must be a positive int"):
        nan_guard_hook(interval=0)
