"""EMA of the weights: mmcv's formula, swaps for evaluation, hook state and resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hooks import ema_hook
from fsm_trainer.hooks.ema import mmcv_buffer_name


class Scalar(nn.Module):
    """One parameter; the train step sets it to the batch value, the val step records it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[str, float]] = []

    def train_step(self, batch, optimizer):
        with torch.no_grad():
            self.w.fill_(float(batch))
        self.seen.append(("train", self.w.item()))
        return {"log_vars": {}, "num_samples": 1}

    def val_step(self, batch, optimizer=None):
        self.seen.append(("val", self.w.item()))
        return {"log_vars": {}, "num_samples": 1}


def _expected(values, momentum, interval, warm_up, start=0.0):
    ema, m0 = start, momentum**interval
    out = []
    for i, x in enumerate(values):
        m = min(m0, (1 + i) / (warm_up + i))
        if i % interval == 0:
            ema = (1 - m) * ema + m * x
        out.append(ema)
    return out


def _capture(factory, built):
    def wrapped(ctx):
        hook = factory(ctx)
        built.append(hook)
        return hook

    return wrapped


@pytest.mark.parametrize(("momentum", "interval", "warm_up"), [(0.5, 1, 1), (0.2, 2, 3), (0.0002, 1, 100)])
def test_ema_follows_mmcv_formula(momentum, interval, warm_up):
    """After each iteration the average is (1 - m) * ema + m * param with mmcv's warmed-up m."""
    model = Scalar()
    values = [float(v) for v in range(1, 9)]
    built = []
    table = compile_workflow([("train", 1)], max_iters=8)
    run(TrainState(), table, data_loaders=[values], model=model,
        hooks=[_capture(ema_hook(momentum, interval, warm_up), built)])
    got = built[0].state_dict()["ema"]["w"].item()
    assert got == pytest.approx(_expected(values, momentum, interval, warm_up)[-1], rel=1e-6)


def test_epoch_run_evaluates_with_ema_weights():
    """In an epoch run, val epochs see the EMA weights and training resumes from the raw ones."""
    model = Scalar()
    table = compile_workflow([("train", 1), ("val", 1)], max_epochs=2)
    run(TrainState(), table, data_loaders=[[1.0, 3.0], [0]], model=model, hooks=[ema_hook(0.5, 1, 1)])
    ema = _expected([1.0, 3.0], 0.5, 1, 1)
    assert model.seen[2] == ("val", pytest.approx(ema[-1]))
    ema2 = _expected([1.0, 3.0, 1.0, 3.0], 0.5, 1, 1)
    assert model.seen[5] == ("val", pytest.approx(ema2[-1]))
    assert model.w.item() == pytest.approx(ema2[-1])  # as mmcv: the run ends with the EMA weights in place


def test_iter_run_swaps_around_val_segments():
    """In an iter run (no epoch points) val segments see the EMA weights, train iterations the raw ones."""
    model = Scalar()
    table = compile_workflow([("train", 2), ("val", 1)], max_iters=4)
    run(TrainState(), table, data_loaders=[[1.0, 3.0], [0]], model=model, hooks=[ema_hook(0.5, 1, 1)])
    vals = [v for kind, v in model.seen if kind == "val"]
    ema = _expected([1.0, 3.0, 1.0, 3.0], 0.5, 1, 1)
    assert vals == [pytest.approx(ema[1]), pytest.approx(ema[3])]
    assert [v for kind, v in model.seen if kind == "train"] == [1.0, 3.0, 1.0, 3.0]


def test_resume_through_hook_state_equals_uninterrupted():
    """Saving the hook state at iter k and loading it into a new run gives the uninterrupted EMA."""
    values = [float(v) for v in range(1, 11)]
    full, first, second = [], [], []
    run(TrainState(), compile_workflow([("train", 1)], max_iters=10), data_loaders=[values], model=Scalar(),
        hooks=[_capture(ema_hook(0.3, 1, 2), full)])
    # The EMA does not depend on the run's length, so a run of 4 iterations is the first 4 of 10.
    run(TrainState(), compile_workflow([("train", 1)], max_iters=4), data_loaders=[values[:4]], model=Scalar(),
        hooks=[_capture(ema_hook(0.3, 1, 2), first)])
    saved = first[0].state_dict()

    def restoring(ctx):
        hook = ema_hook(0.3, 1, 2)(ctx)
        hook.load_state_dict(saved)
        second.append(hook)
        return hook

    run(TrainState(iter=4), compile_workflow([("train", 1)], max_iters=10), data_loaders=[values[4:]],
        model=Scalar(), hooks=[restoring])
    assert second[0].state_dict()["ema"]["w"].item() == pytest.approx(full[0].state_dict()["ema"]["w"].item())


def test_resume_from_an_mmcv_checkpoint(tmp_path):
    """resume_from reads the EMA values from an mmcv checkpoint's ema_* buffers."""
    path = tmp_path / "epoch_1.pth"
    torch.save({"meta": {}, "state_dict": {"w": torch.tensor([0.0]), mmcv_buffer_name("w"): torch.tensor([5.0])}}, path)
    built = []
    run(TrainState(), compile_workflow([("train", 1)], max_iters=1), data_loaders=[[1.0]], model=Scalar(),
        hooks=[_capture(ema_hook(0.5, 1, 1, resume_from=path), built)])
    assert built[0].state_dict()["ema"]["w"].item() == pytest.approx(0.5 * 5.0 + 0.5 * 1.0)


def test_update_buffers_averages_float_buffers():
    """With update_buffers, floating-point buffers (BatchNorm statistics) are averaged too."""
    model = nn.BatchNorm1d(1)
    built = []

    def step(batch):
        model(batch)
        return {"log_vars": {}, "num_samples": 1}

    table = compile_workflow([("train", 1)], max_iters=2)
    run(TrainState(), table, data_loaders=[[torch.tensor([[1.0], [3.0]])] * 2], model=model,
        hooks=[_capture(ema_hook(0.5, 1, 1, update_buffers=True), built)], train_step=step, val_step=step)
    ema = built[0].state_dict()["ema"]
    assert "running_mean" in ema and "num_batches_tracked" not in ema
    assert 0 < ema["running_mean"].item() < model.running_mean.item()


def test_defaults_and_errors():
    """mmcv's defaults (NORMAL priority) and bad arguments named."""
    with pytest.raises(ValueError, match="momentum"):
        ema_hook(1.5)
    with pytest.raises(ValueError, match="interval"):
        ema_hook(interval=0)
    table = compile_workflow([("train", 1)], max_iters=1)
    built = []
    run(TrainState(), table, data_loaders=[[1.0]], model=Scalar(), hooks=[_capture(ema_hook(), built)])
    assert built[0].priority == 50 and built[0].name == "EMAHook"
