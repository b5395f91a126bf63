"""EvalHook: when it evaluates, what it computes, the best checkpoint, and its state across a resume."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fsm_trainer import HookError, TrainState, compile_workflow, run
from fsm_trainer.checkpoint import load_checkpoint
from fsm_trainer.hooks import checkpoint_hook, eval_hook, optimizer_hook
from fsm_trainer.hooks.eval import eval_state, infer_rule, should_evaluate
from fsm_trainer.metrics import accuracy, combine, top_k_accuracy
from fsm_trainer.testing import noop_step


def mmcv_should_evaluate(current, interval, start):
    """mmcv 1.7.2's EvalHook._should_evaluate, with every_n_* written out (current is 0-based)."""
    if start is None:
        return (current + 1) % interval == 0
    if current + 1 < start:
        return False
    return not (current + 1 - start) % interval


@given(st.integers(0, 200), st.integers(1, 10), st.none() | st.integers(0, 20))
def test_should_evaluate_matches_mmcv(current, interval, start):
    """should_evaluate(done) equals mmcv's rule evaluated at the 0-based counter."""
    assert should_evaluate(current + 1, interval, start) == mmcv_should_evaluate(current, interval, start)


@pytest.mark.parametrize(("key", "rule"), [
    ("accuracy", "greater"), ("top1_accuracy", "greater"), ("bbox_mAP", "greater"), ("AR@100", "greater"),
    ("loss", "less"), ("val_loss", "less"), ("mIoU", "greater"),
])
def test_rule_inference_follows_mmcv_keys(key, rule):
    """Keys containing acc/top/mAP/... are greater-is-better, loss is less-is-better."""
    assert infer_rule(key) == rule


def test_top_k_and_accuracy_agree_for_k_1():
    """top-1 accuracy is accuracy; top-C accuracy is 1."""
    g = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(50, 5, generator=g), torch.randint(0, 5, (50,), generator=g)
    assert top_k_accuracy(1)(scores, labels)["top1_accuracy"] == accuracy(scores, labels)["accuracy"]
    assert top_k_accuracy(5)(scores, labels)["top5_accuracy"] == 1.0
    assert set(combine(["accuracy", "top3", "cross_entropy"])(scores, labels)) == {"accuracy", "top3_accuracy", "loss"}


class Identity(nn.Module):
    """A 'model' whose outputs are its inputs: the eval loader decides the metric exactly."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x


def scores_metric(values):
    """A metric returning the next of ``values`` at each evaluation."""
    it = iter(values)
    return lambda outputs, targets: {"score": next(it)}


def run_eval(tmp_path, values, max_epochs, state=None, resume=None, **kw):
    model = Identity()
    loader = [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))]
    return run(state or TrainState(), compile_workflow([("train", 1)], max_epochs=max_epochs), model=model,
               data_loaders=[[0, 1]], train_step=noop_step, val_step=noop_step, work_dir=tmp_path, resume=resume,
               hooks=[eval_hook(loader, scores_metric(values), rule="greater", **kw)])


def test_best_checkpoint_kept_and_previous_removed(tmp_path):
    """Only the best epoch's checkpoint remains; it is a loadable checkpoint whose state holds the best score."""
    final = run_eval(tmp_path, [0.5, 0.7, 0.6, 0.9, 0.8], 5, save_best="score")
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("best_"))
    assert names == ["best_score_epoch_4"]
    kept = eval_state(final)
    assert (kept["best_score"], kept["best_at"], kept["last"]) == (0.9, 4, {"epoch": 5, "metrics": {"score": 0.8}})
    ck = load_checkpoint(tmp_path / "best_score_epoch_4")
    assert ck.state.epoch == 4 and eval_state(ck.state)["best_score"] == 0.9


def test_rule_less_and_auto_key(tmp_path):
    """save_best='auto' takes the first metric; a 'loss' key is minimised."""
    model = Identity()
    losses = iter([3.0, 1.0, 2.0])
    loader = [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))]
    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=3), model=model, data_loaders=[[0]],
                train_step=noop_step, val_step=noop_step, work_dir=tmp_path,
                hooks=[eval_hook(loader, lambda o, t: {"loss": next(losses)}, save_best="auto")])
    assert eval_state(final)["rule"] == "less" and eval_state(final)["best_score"] == 1.0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("best_")] == ["best_loss_epoch_2"]


def test_interval_and_start(tmp_path):
    """interval=2, start=3 evaluates after epochs 3 and 5; start=0 also evaluates once before the first epoch."""
    seen = []

    def metric(o, t):
        seen.append(len(seen))
        return {"score": 1.0}

    model = Identity()
    loader = [(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))]
    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=6), model=model, data_loaders=[[0]],
                train_step=noop_step, val_step=noop_step, hooks=[eval_hook(loader, metric, interval=2, start=3)])
    assert len(seen) == 2 and eval_state(final)["last"]["epoch"] == 5
    seen.clear()
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), model=model, data_loaders=[[0]],
        train_step=noop_step, val_step=noop_step, hooks=[eval_hook(loader, metric, start=0)])
    assert len(seen) == 3  # before epoch 1 (start <= 0), then after epochs 1 and 2


def test_save_best_unknown_key_is_named(tmp_path):
    """A save_best key the metrics do not return raises HookError listing the metrics."""
    with pytest.raises(HookError, match=r"save_best='acc' is not among the metrics \['score'\]"):
        run_eval(tmp_path, [0.5], 1, save_best="acc")


def test_bad_arguments_rejected():
    """Bad interval, rule or an uninferable key raise ValueError when the factory is made."""
    with pytest.raises(ValueError, match="interval"):
        eval_hook([], interval=0)
    with pytest.raises(ValueError, match="rule"):
        eval_hook([], rule="bigger")
    with pytest.raises(ValueError, match="cannot infer"):
        eval_hook([], save_best="f1")
    with pytest.raises(HookError, match="iter-based"):
        run(TrainState(), compile_workflow([("train", 1)], max_iters=1), data_loaders=[[0]], train_step=noop_step,
            val_step=noop_step, hooks=[eval_hook([], by_epoch=True)])


def test_best_score_survives_a_resume(tmp_path):
    """After resuming, a worse score does not replace the best checkpoint saved before the interruption."""
    model = Identity()
    loader = [(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))]
    table2 = compile_workflow([("train", 1)], max_epochs=2)

    def go(values, table, resume=None):
        return run(TrainState(), table, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   data_loaders=[[0]], train_step=noop_step, val_step=noop_step, work_dir=tmp_path, resume=resume,
                   hooks=[checkpoint_hook(),
                          eval_hook(loader, scores_metric(values), save_best="score", rule="greater")])

    go([0.9, 0.95], table2)
    final = go([0.5], compile_workflow([("train", 1)], max_epochs=3), resume="auto")
    assert eval_state(final)["best_score"] == 0.95 and eval_state(final)["best_at"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("best_")) == ["best_score_epoch_2"]


def test_iter_based_best_checkpoint_names(tmp_path):
    """Iter-based evaluation names its best checkpoints best_<key>_iter_<n>."""
    model = Identity()
    loader = [(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))]
    run(TrainState(), compile_workflow([("train", 1)], max_iters=6), model=model, data_loaders=[[0]],
        train_step=noop_step, val_step=noop_step, work_dir=tmp_path,
        hooks=[eval_hook(loader, scores_metric([0.1, 0.3, 0.2]), interval=2, save_best="score", rule="greater")])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("best_")] == ["best_score_iter_4"]
    assert load_checkpoint(tmp_path / "best_score_iter_4").state.iter == 4


def test_accuracy_of_a_trained_classifier(tmp_path):
    """The built-in accuracy on a separable problem reaches 1.0 after a few epochs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=20), model=model,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.5), loss_fn=nn.functional.cross_entropy,
                data_loaders=[DataLoader(data, batch_size=16)],
                hooks=[optimizer_hook(), eval_hook(DataLoader(data, batch_size=32), ["accuracy", "top2"])])
    assert eval_state(final)["last"]["metrics"]["accuracy"] >= 0.95
    assert eval_state(final)["last"]["metrics"]["top2_accuracy"] == 1.0
    assert model.training
