"""The hook points, modes and counters of a run equal mmcv 1.7.2's, recorded from mmcv itself.

``tests/golden/mmcv_traces.json`` was written by ``tools/record_mmcv_traces.py`` running
mmcv's EpochBasedRunner and IterBasedRunner with a NORMAL-priority hook on every point.
Two documented differences are normalised here, and only these:

* epoch-based: at ``before_train_epoch``/``before_val_epoch`` mmcv still shows the previous
  phase's last ``inner_iter``; fsm_trainer shows 0.
* iter-based: at ``after_epoch``/``after_run`` mmcv shows ``inner_iter`` 0 when the workflow
  ended on train entries it skipped (it resets the counter before skipping); fsm_trainer keeps
  the count of the last segment that ran.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.testing import CountingLoader, noop_step, record_trace

GOLDEN = json.loads((Path(__file__).parent / "golden" / "mmcv_traces.json").read_text())


def _id(sc: dict) -> str:
    wf = "+".join(f"{m}{n}" for m, n in sc["workflow"])
    limit = f"e{sc['max_epochs']}" if sc["runner"] == "epoch" else f"i{sc['max_iters']}"
    return f"{sc['runner']}-{wf}-{limit}-L{'.'.join(map(str, sc['loader_lens']))}"


def _run(sc: dict) -> tuple[list[tuple], list[CountingLoader], TrainState]:
    table = compile_workflow([tuple(w) for w in sc["workflow"]], max_epochs=sc["max_epochs"], max_iters=sc["max_iters"])
    trace: list[tuple] = []
    loaders = [CountingLoader(n) for n in sc["loader_lens"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the recorder listens on points this table never reaches
        final = run(TrainState(), table, data_loaders=loaders, hooks=[record_trace(trace)],
                    train_step=noop_step, val_step=noop_step)
    return trace, loaders, final


def test_golden_file_covers_both_runners():
    """The golden file has many scenarios of each runner, so the parity test means something."""
    kinds = [sc["runner"] for sc in GOLDEN]
    assert kinds.count("epoch") > 100
    assert kinds.count("iter") > 20


@pytest.mark.parametrize("sc", GOLDEN, ids=[_id(sc) for sc in GOLDEN])
def test_trace_equals_mmcv(sc):
    """Every hook point, in order, sees mmcv's mode, epoch, iter and inner_iter."""
    ours, loaders, _ = _run(sc)
    gold = [tuple(x) for x in sc["trace"]]
    assert len(ours) == len(gold)
    for k, (a, b) in enumerate(zip(ours, gold, strict=True)):
        point = b[0]
        if sc["runner"] == "epoch" and point in ("before_train_epoch", "before_val_epoch"):
            assert a[4] == 0, (k, a)
            a, b = a[:4], b[:4]
        if sc["runner"] == "iter" and point in ("after_epoch", "after_run") and a[4] != b[4]:
            assert b[4] == 0, (k, a, b)
            a, b = a[:4], b[:4]
        assert a == b, f"entry {k}: ours {a} != mmcv {b}"
    if sc["runner"] == "iter":
        calls = sorted([i, e] for i, x in enumerate(loaders) for e in x.sampler.epochs)
        assert calls == sorted(sc["set_epoch_calls"])


def test_example_trace_from_the_issue():
    """[('train', 2), ('val', 1)], max_epochs=3, loaders of 1 and 2 batches: T0 T1 V T2 V."""
    sc = {"runner": "epoch", "workflow": [["train", 2], ["val", 1]], "max_epochs": 3, "max_iters": None,
          "loader_lens": [1, 2]}
    trace, _, final = _run(sc)
    epochs = [(p, m, e, i) for p, m, e, i, _ in trace if p.endswith("_epoch") and p.startswith("before")]
    assert epochs == [
        ("before_train_epoch", "train", 0, 0),
        ("before_train_epoch", "train", 1, 1),
        ("before_val_epoch", "val", 2, 2),
        ("before_train_epoch", "train", 2, 2),
        ("before_val_epoch", "val", 3, 3),
    ]
    assert [p for p, *_ in trace].count("after_val_iter") == 4
    assert trace[0][0] == "before_run" and trace[-1][0] == "after_run"
    assert (final.epoch, final.iter) == (3, 3)
