"""Loggers: mmcv's JSON layout, the shared interval rules, TensorBoard, MLflow, the progress bar."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections import defaultdict

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hooks import (
    default_hooks,
    eval_hook,
    iter_timer_hook,
    logger_hook,
    mlflow_logger_hook,
    optimizer_hook,
    progress_bar_hook,
    tensorboard_logger_hook,
    text_logger_hook,
)
from fsm_trainer.hooks.logger_base import LogRecord, writer
from fsm_trainer.testing import noop_step


def classification(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x)

    def train_step(self, batch, optimizer=None):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(x)}

    val_step = train_step


def spy(records, name="spy", **kw):
    """A logger hook collecting its records."""
    return logger_hook(lambda ctx, by_epoch: writer(lambda s, r: records.append(r)), name=name, **kw)


def scripted(values):
    """Train steps returning the given losses, one sample each."""
    it = iter(values)
    return lambda batch: {"log_vars": {"loss": next(it)}, "num_samples": 1}


def load_json_logs(path):
    """mmcv's tools/analysis_tools/analyze_logs.py reading of a .log.json (epoch -> key -> values)."""
    log_dict = {}
    with open(path) as f:
        for line in f:
            log = json.loads(line.strip())
            if "epoch" not in log:
                continue
            epoch = log.pop("epoch")
            log_dict.setdefault(epoch, defaultdict(list))
            for k, v in log.items():
                log_dict[epoch][k].append(v)
    return log_dict


def test_json_log_has_mmcv_layout_and_is_read_by_mmcv_analysis(tmp_path):
    """Meta first; then mode/epoch/iter/lr first, floats rounded to 5 digits; mmcv's reader groups by epoch."""
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = DataLoader(classification(16), batch_size=4)
    run(TrainState(), compile_workflow([("train", 1), ("val", 1)], max_epochs=2), model=model, optimizer=opt,
        data_loaders=[data, data], work_dir=tmp_path, meta={"seed": 0, "exp_name": "x"},
        hooks=default_hooks(log_interval=2))
    lines = next(tmp_path.glob("*.log.json")).read_text().splitlines()
    assert json.loads(lines[0]) == {"seed": 0, "exp_name": "x"}
    records = [json.loads(x) for x in lines[1:]]
    assert [list(r)[:4] for r in records] == [["mode", "epoch", "iter", "lr"]] * 6
    assert [(r["mode"], r["epoch"], r["iter"]) for r in records] == [
        ("train", 1, 2), ("train", 1, 4), ("val", 1, 4), ("train", 2, 2), ("train", 2, 4), ("val", 2, 4)]
    assert all(round(v, 5) == v for r in records for v in r.values() if isinstance(v, float))
    assert {"time", "data_time", "loss"} <= set(records[0])
    by_epoch = load_json_logs(next(tmp_path.glob("*.log.json")))
    assert sorted(by_epoch) == [1, 2] and by_epoch[2]["mode"] == ["train", "train", "val"]


def test_every_logger_sees_every_interval_once():
    """Two loggers log the same averages; the last one clears them (mmcv's reset_flag rule)."""
    a, b = [], []
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0] * 4],
        train_step=scripted([1.0, 3.0, 5.0, 7.0]), val_step=noop_step, hooks=[spy(a, "a", interval=2),
                                                                              spy(b, "b", interval=2)])
    assert [dict(r.values) for r in a] == [dict(r.values) for r in b] == [{"loss": 2.0}, {"loss": 6.0}]


def test_ignore_last_and_by_epoch_keep_mmcv_meaning():
    """ignore_last=False logs the partial tail of an epoch; by_epoch=False counts global iterations."""
    table = compile_workflow([("train", 1)], max_epochs=2)
    tail, glob = [], []
    run(TrainState(), table, data_loaders=[[0] * 3], train_step=scripted([1.0, 2.0, 3.0] * 2), val_step=noop_step,
        hooks=[spy(tail, interval=2, ignore_last=False)])
    assert [(r.epoch, r.iter) for r in tail] == [(1, 2), (1, 3), (2, 2), (2, 3)]
    run(TrainState(), table, data_loaders=[[0] * 3], train_step=scripted([1.0, 2.0, 3.0] * 2), val_step=noop_step,
        hooks=[spy(glob, interval=2, by_epoch=False)])
    assert [(r.epoch, r.iter, r.step) for r in glob] == [(1, 2, 2), (2, 4, 4), (2, 6, 6)]


def test_eval_metrics_reach_every_logger_as_val_records(tmp_path, caplog):
    """EvalHook's metrics are logged by all loggers at the same point, as mode 'val' with the loader length."""
    model = Net()
    data = DataLoader(classification(16), batch_size=4)
    records = []
    with caplog.at_level(logging.INFO, logger="fsm_trainer"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), model=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data_loaders=[data], work_dir=tmp_path,
            hooks=[*default_hooks(log_interval=2), eval_hook(data, "accuracy"), spy(records)])
    evals = [r for r in records if r.mode == "val"]
    assert [(r.epoch, r.iter, sorted(r.values)) for r in evals] == [(1, 4, ["accuracy"]), (2, 4, ["accuracy"])]
    assert sum(1 for r in caplog.records if r.getMessage().startswith("Epoch(val) [1][4]\taccuracy: ")) == 1
    vals = [json.loads(x) for x in next(tmp_path.glob("*.log.json")).read_text().splitlines()]
    assert [v["mode"] for v in vals] == ["train", "train", "val"] * 2 and "eval_iter_num" not in vals[2]


def test_iter_based_eval_logs_train_first_then_metrics():
    """Iter-based: at an eval iteration the loggers log the train interval first, then the metrics (mmcv)."""
    model = Net()
    data = DataLoader(classification(16), batch_size=4)
    records = []
    run(TrainState(), compile_workflow([("train", 1)], max_iters=4), model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data_loaders=[data],
        hooks=[optimizer_hook(), iter_timer_hook(), eval_hook(data, "accuracy", interval=2), spy(records, interval=2)])
    assert [(r.mode, r.iter, r.step) for r in records] == [("train", 2, 2), ("val", 4, 2), ("train", 4, 4),
                                                           ("val", 4, 4)]


def test_tensorboard_event_files_load_in_tensorboards_reader(tmp_path):
    """Scalars written by the hook are read back by TensorBoard's own EventAccumulator."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = Net()
    data = DataLoader(classification(16), batch_size=4)
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), data_loaders=[data],
        work_dir=tmp_path, hooks=[optimizer_hook(), iter_timer_hook(), eval_hook(data, "accuracy"),
                                  tensorboard_logger_hook(interval=2)])
    acc = EventAccumulator(str(tmp_path / "tf_logs"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "val/accuracy", "learning_rate", "momentum"} <= tags
    assert "train/time" not in tags
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6, 8]
    assert [e.step for e in acc.Scalars("val/accuracy")] == [5, 9]
    assert acc.Scalars("learning_rate")[0].value == pytest.approx(0.1)


def test_mlflow_logs_to_a_local_file_store(tmp_path, monkeypatch):
    """Metrics reach a local MLflow store with mmcv's names and steps; params and tags too."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this opt-in
    uri = (tmp_path / "mlruns").as_uri()
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0] * 4],
        train_step=scripted([1.0, 3.0, 5.0, 7.0]), val_step=noop_step,
        hooks=[mlflow_logger_hook("exp", tags={"t": "1"}, params={"lr": 0.1}, interval=2, tracking_uri=uri)])
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("exp")
    (r,) = client.search_runs([exp.experiment_id])
    hist = client.get_metric_history(r.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in hist] == [(2, 2.0), (4, 6.0)]
    assert r.data.params == {"lr": "0.1"} and r.data.tags["t"] == "1"
    assert r.info.status == "FINISHED"


@pytest.mark.parametrize(("factory", "module", "hint"), [
    (lambda: mlflow_logger_hook(), "mlflow", "pip install mlflow"),
    (lambda: tensorboard_logger_hook("x"), "torch.utils.tensorboard", "pip install tensorboard"),
])
def test_missing_optional_dependency_names_the_install(monkeypatch, factory, module, hint):
    """Building a hook whose backend is missing raises ImportError with the pip command."""
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=hint):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[0]],
            train_step=noop_step, val_step=noop_step, hooks=[factory()])


def test_progress_bar_counts_iterations_and_prints_val_records():
    """The bar reaches the loader length each epoch; eval records are printed above it."""
    out = io.StringIO()
    model = Net()
    data = DataLoader(classification(16), batch_size=4)
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data_loaders=[data],
        hooks=[optimizer_hook(), eval_hook(data), progress_bar_hook(2, file=out, mininterval=0)])
    text = out.getvalue()
    assert "Epoch 1: 100%" in text and "Epoch 2: 100%" in text and "4/4" in text
    assert "Epoch(val) [1][4]\taccuracy: " in text


def test_text_logger_still_keeps_iter_val_apart_with_two_loggers(caplog):
    """Iter-based val segments are logged by each logger as their own val record."""
    recs = []
    outs = {"train": {"log_vars": {"loss": 1.0}, "num_samples": 1},
            "val": {"log_vars": {"loss": 9.0}, "num_samples": 1}}
    with caplog.at_level(logging.INFO, logger="fsm_trainer"):
        run(TrainState(), compile_workflow([("train", 2), ("val", 1)], max_iters=4), data_loaders=[[0], [0]],
            train_step=lambda b: outs["train"], val_step=lambda b: outs["val"],
            hooks=[text_logger_hook(2), spy(recs, interval=2)])
    assert [(r.mode, r.iter, dict(r.values)) for r in recs] == [
        ("train", 2, {"loss": 1.0}), ("val", 2, {"loss": 9.0}), ("train", 4, {"loss": 1.0}), ("val", 4, {"loss": 9.0})]


def test_log_record_is_plain_data():
    """A LogRecord is a frozen, comparable value."""
    assert LogRecord("train", 1, 2, 2, {"loss": 1.0}) == LogRecord("train", 1, 2, 2, {"loss": 1.0})
