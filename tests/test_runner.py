"""run(): real torch runs, both model styles, val mode, stop, logging, bad input."""

from __future__ import annotations

import json
import logging

import attrs
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fsm_trainer import END, Hook, TrainState, WorkflowError, compile_workflow, run, transition
from fsm_trainer.hooks import default_hooks, optimizer_hook, text_logger_hook
from fsm_trainer.simulate import simulate
from fsm_trainer.testing import CountingLoader, noop_step, record_trace


def linear_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    return TensorDataset(x, y)


class Recorder(nn.Module):
    """An mmcv-style model that records how each step was called."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.calls = []

    def train_step(self, batch, optimizer):
        x, y = batch
        loss = nn.functional.mse_loss(self.lin(x), y)
        self.calls.append(("train", self.training, torch.is_grad_enabled(), optimizer is not None))
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(x)}

    def val_step(self, batch, optimizer=None):
        x, y = batch
        loss = nn.functional.mse_loss(self.lin(x), y)
        self.calls.append(("val", self.training, torch.is_grad_enabled(), optimizer is not None))
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(x)}


def losses_hook(losses):
    def after(s):
        losses.append(s.outputs["log_vars"]["loss"])
        return s

    return Hook("losses", "LOWEST", {"after_train_iter": after})


def test_loss_falls_with_a_plain_module_and_loss_fn():
    """A plain nn.Module trained with loss_fn and the default hooks fits a linear problem."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = DataLoader(linear_data(), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    losses: list[float] = []
    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=30), model=model, optimizer=opt,
                data_loaders=[loader], loss_fn=nn.functional.mse_loss, hooks=[*default_hooks(), losses_hook(losses)])
    assert (final.epoch, final.iter) == (30, 120)
    assert sum(losses[-4:]) < 0.01 * sum(losses[:4])


def test_val_runs_in_eval_mode_without_grad_and_train_with():
    """Train steps see train mode with grad; val steps eval mode under no_grad (epoch-based passes optimizer)."""
    model = Recorder()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = DataLoader(linear_data(8), batch_size=4)
    run(TrainState(), compile_workflow([("train", 1), ("val", 1)], max_epochs=2), model=model, optimizer=opt,
        data_loaders=[data, data], hooks=[optimizer_hook()])
    assert set(model.calls) == {("train", True, True, True), ("val", False, False, True)}
    assert len(model.calls) == 8


def test_iter_based_run_with_val():
    """An iter-based run does max_iters train steps; val_step gets no optimizer, as in mmcv."""
    model = Recorder()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = DataLoader(linear_data(12), batch_size=4)
    final = run(TrainState(), compile_workflow([("train", 5), ("val", 2)], max_iters=12), model=model,
                optimizer=opt, data_loaders=[data, data], hooks=[optimizer_hook()])
    kinds = [c[0] for c in model.calls]
    assert kinds.count("train") == 12 and kinds.count("val") == 6
    assert ("val", False, False, False) in model.calls
    assert (final.iter, final.epoch) == (12, 3)


@pytest.mark.parametrize("table", [
    compile_workflow([("train", 2), ("val", 1)], max_epochs=3),
    compile_workflow([("train", 3), ("val", 2)], max_iters=8),
])
def test_real_run_trace_equals_dry_run(table):
    """The hook points and states of a real run equal simulate()'s dry run of the same table."""
    trace: list[tuple] = []
    lens = [3, 2]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(TrainState(), table, data_loaders=[CountingLoader(n) for n in lens], hooks=[record_trace(trace)],
            train_step=noop_step, val_step=noop_step)
    dry = [(p, s.mode, s.epoch, s.iter, s.inner_iter) for p, s in simulate(table, lens)]
    assert trace == dry


@pytest.mark.parametrize("table", [
    compile_workflow([("train", 2), ("val", 1)], max_epochs=4),
    compile_workflow([("train", 3), ("val", 2)], max_iters=10),
])
def test_continuing_from_a_saved_boundary_state_replays_the_rest(table):
    """A state taken between units and fed back to run() reproduces the rest of the original run.

    (Iter-based loaders restart their pass here, so ``epoch``, the pass count, is compared by
    the checkpoint tests, which restore the data position.)"""
    import warnings
    warnings.simplefilter("ignore")
    lens = [2, 2]
    full: list[tuple] = []
    saved: list[TrainState] = []
    unit_end = "after_train_epoch" if table.by == "epoch" else "after_train_iter"

    def save(s):
        if len(saved) == 0 and (s.epoch == 1 if table.by == "epoch" else s.iter == 4):
            nxt = attrs.evolve(s, epoch=s.epoch + 1) if table.by == "epoch" else attrs.evolve(
                s, iter=s.iter + 1, inner_iter=s.inner_iter + 1)
            saved.append(transition(table, nxt, "done"))
            full.append(("SAVED",))
        return s

    hooks = [record_trace(full), Hook("save", "LOWEST", {unit_end: save})]
    run(TrainState(), table, data_loaders=[CountingLoader(n) for n in lens], hooks=hooks,
        train_step=noop_step, val_step=noop_step)
    rest: list[tuple] = []
    run(saved[0], table, data_loaders=[CountingLoader(n) for n in lens], hooks=[record_trace(rest)],
        train_step=noop_step, val_step=noop_step)
    tail = full[full.index(("SAVED",)) + 1:]
    keep = (lambda t: t) if table.by == "epoch" else (lambda t: (t[0], t[1], t[3], t[4]))
    iter_points = [keep(t) for t in tail if t[0].endswith("_iter")]
    assert [keep(t) for t in rest if t[0].endswith("_iter")] == iter_points
    assert keep(rest[-1]) == keep(full[-1])
    warnings.resetwarnings()


def test_stop_ends_the_run_after_the_current_point():
    """A hook that requests stop ends the run: no more iterations, after_run still runs."""
    trace: list[tuple] = []

    def stop_at_3(s):
        return s.request_stop() if s.iter == 3 else s

    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=5),
                data_loaders=[CountingLoader(4)], train_step=noop_step, val_step=noop_step,
                hooks=[Hook("stopper", "NORMAL", {"after_train_iter": stop_at_3}),
                       record_trace(trace, points=("after_train_iter", "after_train_epoch", "after_run"))])
    assert final.stop and final.iter == 4 and final.epoch == 0
    assert [p for p, *_ in trace] == ["after_train_iter"] * 4 + ["after_run"]


class Exploding:
    """A loader that fails the test if it is ever iterated."""

    def __len__(self):
        return 1

    def __iter__(self):
        msg = "data was touched"
        raise AssertionError(msg)


@pytest.mark.parametrize(("loaders", "match"), [
    ([Exploding()], "got 1 data loaders for a workflow of 2 entries"),
    ([Exploding(), 3], r"data_loaders\[1\] is not iterable"),
    (Exploding(), "one loader per workflow entry"),
])
def test_bad_loaders_fail_before_data_is_touched(loaders, match):
    """A loader list that does not match the workflow raises WorkflowError before any batch is drawn."""
    with pytest.raises(WorkflowError, match=match):
        run(TrainState(), compile_workflow([("train", 1), ("val", 1)], max_epochs=1), data_loaders=loaders,
            train_step=noop_step, val_step=noop_step)


def test_bad_hook_fails_before_data_is_touched():
    """An invalid hook entry raises before data is touched."""
    from fsm_trainer import HookError

    with pytest.raises(HookError):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[Exploding()],
            train_step=noop_step, val_step=noop_step, hooks=[42])


def test_step_returning_a_non_dict_is_named():
    """A step returning something else than a dict raises TypeError naming the function and the value."""
    def my_step(batch):
        return 1.5

    with pytest.raises(TypeError, match=r"my_step.*must return a dict.*got float: 1\.5"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0]],
            train_step=my_step, val_step=my_step)


def test_model_without_steps_or_loss_fn_is_rejected():
    """A plain module with neither train_step nor loss_fn raises TypeError saying what to give."""
    with pytest.raises(TypeError, match="loss_fn"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0]], model=nn.Linear(1, 1))


def test_sampler_set_epoch_in_epoch_runs():
    """Each train epoch calls sampler.set_epoch(epoch), as mmcv's DistSamplerSeedHook does."""
    loader = CountingLoader(2)
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=3), data_loaders=[loader],
        train_step=noop_step, val_step=noop_step)
    assert loader.sampler.epochs == [0, 1, 2]


def test_text_logger_lines_and_files(tmp_path, caplog):
    """The text logger writes mmcv-format lines to the logger, the .log file and the .log.json file."""
    model = Recorder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = DataLoader(linear_data(16), batch_size=4)
    with caplog.at_level(logging.DEBUG, logger="fsm_trainer"):
        run(TrainState(), compile_workflow([("train", 1), ("val", 1)], max_epochs=2), model=model, optimizer=opt,
            data_loaders=[data, data], work_dir=tmp_path,
            hooks=[*default_hooks(log_interval=2, grad_clip={"max_norm": 10.0})])
    lines = [r.getMessage() for r in caplog.records]
    train = [x for x in lines if x.startswith("Epoch [")]
    assert len(train) == 4
    assert train[0].startswith("Epoch [1][2/4]\tlr: 1.000e-01, eta: ")
    assert "time: " in train[0] and "data_time: " in train[0]
    assert ", loss: " in train[0] and "grad_norm: " in train[0]
    vals = [x for x in lines if x.startswith("Epoch(val)")]
    assert vals[0].startswith("Epoch(val) [1][4]\tloss: ")
    assert "hooks will be executed in the following order" in lines[0]
    logs = list(tmp_path.glob("*.log"))
    assert len(logs) == 1 and len(logs[0].read_text().splitlines()) == 6
    records = [json.loads(x) for x in next(tmp_path.glob("*.log.json")).read_text().splitlines()]
    assert [r["mode"] for r in records] == ["train", "train", "val"] * 2
    assert records[0]["epoch"] == 1 and records[0]["iter"] == 2 and "loss" in records[0]


def test_logged_average_is_weighted_by_num_samples(caplog):
    """The logged loss is the num_samples-weighted mean over the interval."""
    outs = iter([{"log_vars": {"loss": 1.0}, "num_samples": 1}, {"log_vars": {"loss": 4.0}, "num_samples": 3}])
    with caplog.at_level(logging.INFO, logger="fsm_trainer"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0, 1]],
            train_step=lambda b: next(outs), val_step=noop_step, hooks=[text_logger_hook(2)])
    assert any(r.getMessage().endswith("loss: 3.2500") for r in caplog.records)


def test_iter_run_logs_val_apart(caplog):
    """In an iter-based run, val iterations are averaged apart and logged as Iter(val) lines."""
    outs = {"train": {"log_vars": {"loss": 1.0}, "num_samples": 1},
            "val": {"log_vars": {"loss": 9.0}, "num_samples": 1}}
    with caplog.at_level(logging.INFO, logger="fsm_trainer"):
        run(TrainState(), compile_workflow([("train", 2), ("val", 1)], max_iters=4), data_loaders=[[0], [0]],
            train_step=lambda b: outs["train"], val_step=lambda b: outs["val"], hooks=[text_logger_hook(2)])
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["Iter [2/4]\tloss: 1.0000", "Iter(val) [2]\tloss: 9.0000",
                     "Iter [4/4]\tloss: 1.0000", "Iter(val) [4]\tloss: 9.0000"]


def test_run_from_end_state_only_calls_run_points():
    """A state already at END runs before_run and after_run and nothing else."""
    trace: list[tuple] = []
    run(TrainState(phase=END), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0]],
        train_step=noop_step, val_step=noop_step, hooks=[record_trace(trace, points=("before_run", "after_run",
                                                                                     "after_train_iter"))])
    assert [p for p, *_ in trace] == ["before_run", "after_run"]


@pytest.mark.slow
def test_digits_example_reaches_95_percent(tmp_path):
    """The README's main job: digits, train+val, at least 95% val accuracy."""
    from fsm_trainer.examples.digits import main

    assert main(["--epochs", "20", "--work-dir", str(tmp_path)]) >= 0.95


@pytest.mark.parametrize("table", [
    compile_workflow([("train", 1)], max_epochs=3),
    compile_workflow([("train", 5)], max_iters=20),
])
def test_stop_at_before_train_iter_skips_the_step(table):
    """A stop requested at before_train_iter skips that step and its after point; iter counts done work."""
    steps: list[int] = []

    def step(batch):
        steps.append(batch)
        return {"log_vars": {}, "num_samples": 1}

    trace: list[tuple] = []
    final = run(TrainState(), table, data_loaders=[CountingLoader(4)], train_step=step, val_step=step,
                hooks=[Hook("stopper", "NORMAL", {"before_train_iter": lambda s: s.request_stop() if s.iter == 6 else s}),
                       record_trace(trace, points=("after_train_iter", "after_run"))])
    assert len(steps) == 6 and final.iter == 6 and final.stop
    assert [p for p, *_ in trace].count("after_train_iter") == 6


def test_optimizer_without_a_hook_that_steps_it_warns(caplog):
    """run() with an optimizer but no optimizer hook says that nothing steps it."""
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.zeros(1, 2), torch.zeros(1, 1))]
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=model, optimizer=opt,
            data_loaders=[data], loss_fn=nn.functional.mse_loss)
    assert "no hook steps it" in caplog.text
