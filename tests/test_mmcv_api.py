"""``fsm_trainer.mmcv`` runs a script written for mmcv 1.7.2's runner API as mmcv does.

``tests/golden/mmcv_api/golden.json`` was written by ``tools/record_mmcv_api.py`` running the
same :func:`scenario` on mmcv 1.7.2's EpochBasedRunner and IterBasedRunner: class hooks
registered through ``register_training_hooks`` (a step LR with warmup, a cosine momentum,
grad clipping; an ``LrUpdaterHook`` subclass named by ``lr_config=dict(policy=...)``) and
``register_hook``, ``run(..., scale=0.5)`` reaching ``train_step``. One documented difference
is normalised: at ``before_train_epoch``/``before_val_epoch`` mmcv shows the previous phase's
last ``inner_iter``, fsm_trainer shows 0.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import fsm_trainer.mmcv as api

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "golden" / "mmcv_api" / "golden.json").read_text())


def _tool() -> object:
    spec = importlib.util.spec_from_file_location("record_mmcv_api", ROOT / "tools" / "record_mmcv_api.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("record_mmcv_api", mod)
    spec.loader.exec_module(mod)
    return mod


TOOL = _tool()
API = SimpleNamespace(Hook=api.Hook, HOOKS=api.HOOKS, LrUpdaterHook=api.LrUpdaterHook,
                      EpochBasedRunner=api.EpochBasedRunner, IterBasedRunner=api.IterBasedRunner)


@pytest.fixture(scope="module", params=["epoch", "iter"])
def both(request: pytest.FixtureRequest) -> tuple[str, dict, dict]:
    kind = request.param
    return kind, TOOL.scenario(API, kind), GOLDEN[kind]  # type: ignore[attr-defined]


def test_golden_covers_val_and_several_epochs() -> None:
    """The recorded runs have train and val points and several LR values, so the comparison means something."""
    for kind in ("epoch", "iter"):
        points = {t[0] for t in GOLDEN[kind]["trace"]}
        assert {"before_val_iter", "after_train_iter", "before_run", "after_run"} <= points
        assert len({round(x[1], 12) for x in GOLDEN[kind]["lr"]}) >= 3


def test_hook_sequence_and_counters_equal_mmcv(both: tuple[str, dict, dict]) -> None:
    """Every class-hook call, in order, with the mode and counters the hook saw, equals mmcv's."""
    kind, ours, gold = both
    assert len(ours["trace"]) == len(gold["trace"])
    for a, b in zip(ours["trace"], gold["trace"], strict=True):
        if kind == "epoch" and b[0] in ("before_train_epoch", "before_val_epoch"):
            a, b = a[:4], b[:4]
        assert a == b


def test_lr_and_momentum_per_iteration_equal_mmcv(both: tuple[str, dict, dict]) -> None:
    """The LR and momentum a LOW hook reads before each train iteration equal mmcv's."""
    _, ours, gold = both
    assert [x[0] for x in ours["lr"]] == [x[0] for x in gold["lr"]]
    for a, b in zip(ours["lr"], gold["lr"], strict=True):
        assert a[1] == pytest.approx(b[1], rel=1e-12)
        assert a[2] == pytest.approx(b[2], rel=1e-12)


def test_final_weights_equal_mmcv(both: tuple[str, dict, dict]) -> None:
    """The same training on CPU ends with mmcv's weights."""
    _, ours, gold = both
    assert ours["weights"].keys() == gold["weights"].keys()
    for k in gold["weights"]:
        torch.testing.assert_close(torch.tensor(ours["weights"][k]), torch.tensor(gold["weights"][k]),
                                   rtol=1e-6, atol=1e-7)


def test_text_logger_records_equal_mmcv(both: tuple[str, dict, dict]) -> None:
    """The ``.log.json`` records (without times and memory) equal mmcv's: train and val values,
    LR, epoch and iter numbering. Iter-based val is logged apart here (documented), so its
    records are extra; mmcv's records are ours without them."""
    kind, ours, gold = both
    assert gold["log"] and any(r["mode"] == "train" for r in gold["log"])
    mine = [r for r in ours["log"] if kind == "epoch" or r["mode"] == "train"]
    assert mine == gold["log"]
    if kind == "iter":
        assert [r["iter"] for r in ours["log"] if r["mode"] == "val"] == [4, 8, 10]
