"""LR and momentum values equal mmcv 1.7.2's at every train iteration, recorded from mmcv itself.

``tests/golden/mmcv_lr.json`` was written by ``tools/record_mmcv_lr.py``: mmcv's runners with
its LR/momentum updater hooks and a NORMAL-priority hook reading every param group at
``before_train_iter``. Here the same configs run through :func:`fsm_trainer.run` with
:func:`~fsm_trainer.hooks.lr_updater`/:func:`~fsm_trainer.hooks.momentum_updater`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer.hooks import lr_updater, momentum_updater
from fsm_trainer.schedules import ScheduleConfigError
from fsm_trainer.testing import CountingLoader, noop_step


def _decode(x: Any) -> Any:
    if isinstance(x, dict):
        if set(x) == {"__tuple__"}:
            return tuple(_decode(v) for v in x["__tuple__"])
        return {k: _decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return x


GOLDEN = _decode(json.loads((Path(__file__).parent / "golden" / "mmcv_lr.json").read_text()))
SCENARIOS = GOLDEN["scenarios"]
REJECTS = GOLDEN["rejects"]


def make_optimizer(kind: str) -> Any:
    """The optimizer layouts of the recorder (three param groups, or a dict of two optimizers)."""
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    if kind == "sgd":
        return torch.optim.SGD(
            [{"params": [a]}, {"params": [b], "lr": 0.05, "momentum": 0.8}, {"params": [c], "lr": 0.02}],
            lr=0.1, momentum=0.9,
        )
    if kind == "adam":
        return torch.optim.Adam(
            [{"params": [a]}, {"params": [b], "lr": 0.002, "betas": (0.8, 0.99)}, {"params": [c], "lr": 0.0005}],
            lr=0.001, betas=(0.9, 0.999),
        )
    return {
        "gen": torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1, momentum=0.9),
        "disc": torch.optim.Adam([c], lr=0.001, betas=(0.85, 0.999)),
    }


def _groups(opt: Any) -> list[dict[str, Any]]:
    if isinstance(opt, dict):
        return [g for o in opt.values() for g in o.param_groups]
    return opt.param_groups


def _recorder(opt: Any, out: dict[str, list]) -> Hook:
    def record(s: TrainState) -> TrainState:
        gs = _groups(opt)
        out["iters"].append([s.epoch, s.iter])
        out["lr"].append([g["lr"] for g in gs])
        out["momentum"].append([g["momentum"] if "momentum" in g else g["betas"][0] for g in gs])
        return s

    return Hook("recorder", "NORMAL", {"before_train_iter": record})


def _stop_after(k: int) -> Hook:
    def stop(s: TrainState) -> TrainState:
        return s.request_stop() if s.iter == k - 1 else s

    return Hook("stop", "LOWEST", {"after_train_iter": stop})


def run_scenario(sc: dict[str, Any], opt: Any, start: TrainState | None = None, stop_at: int | None = None) -> dict:
    """Run ``sc``'s schedule hooks over ``opt``; returns the recorded iters, lr and momentum."""
    table = compile_workflow([tuple(w) for w in sc["workflow"]], max_epochs=sc["max_epochs"], max_iters=sc["max_iters"])
    out: dict[str, list] = {"iters": [], "lr": [], "momentum": []}
    hooks: list[Any] = [_recorder(opt, out)]
    if sc["lr_config"] is not None:
        hooks.append(lr_updater(**sc["lr_config"]))
    if sc["momentum_config"] is not None:
        hooks.append(momentum_updater(**sc["momentum_config"]))
    if stop_at is not None:
        hooks.append(_stop_after(stop_at))
    loaders = [CountingLoader(sc["epoch_len"]) for _ in sc["workflow"]]
    run(start or TrainState(), table, data_loaders=loaders, optimizer=opt, hooks=hooks,
        train_step=noop_step, val_step=noop_step)
    return out


def _id(sc: dict[str, Any]) -> str:
    parts = [sc["runner"], sc["optimizer"]]
    for key in ("lr_config", "momentum_config"):
        c = sc[key]
        if c is not None:
            extra = ",".join(f"{k}={v}" for k, v in c.items() if k != "policy")
            parts.append(f"{key[:2]}:{c['policy']}({extra})")
    if sc["resume_iter"] is not None:
        parts.append(f"resume@{sc['resume_iter']}")
    return "-".join(parts).replace(" ", "")


def assert_close(ours: list[list[float]], gold: list[list[float]], what: str) -> None:
    assert len(ours) == len(gold), f"{what}: {len(ours)} iterations, mmcv had {len(gold)}"
    for i, (a_row, b_row) in enumerate(zip(ours, gold, strict=True)):
        for j, (a, b) in enumerate(zip(a_row, b_row, strict=True)):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300), f"{what}[iter {i}][group {j}]: {a!r} != mmcv {b!r}"


def test_golden_file_covers_the_issue():
    """Every LR and momentum policy, every warmup, both runners, dict optimizers and resume are recorded."""
    lr = {sc["lr_config"]["policy"].lower() for sc in SCENARIOS if sc["lr_config"]}
    mom = {sc["momentum_config"]["policy"].lower() for sc in SCENARIOS if sc["momentum_config"]}
    assert lr == {"fixed", "step", "exp", "poly", "inv", "cosineannealing", "flatcosineannealing",
                  "cosinerestart", "cyclic", "onecycle", "linearannealing"}
    assert mom == {"step", "cosineannealing", "linearannealing", "cyclic", "onecycle"}
    warm = {(c["warmup"], c.get("warmup_by_epoch", False)) for sc in SCENARIOS
            for c in (sc["lr_config"], sc["momentum_config"]) if c and c.get("warmup")}
    assert {w for w, _ in warm} == {"constant", "linear", "exp"} and (("linear", True) in warm)
    assert {sc["runner"] for sc in SCENARIOS} == {"epoch", "iter"}
    assert {sc["optimizer"] for sc in SCENARIOS} == {"sgd", "adam", "dict"}
    assert sum(sc["resume_iter"] is not None for sc in SCENARIOS) >= 5


@pytest.mark.parametrize("sc", SCENARIOS, ids=[_id(sc) for sc in SCENARIOS])
def test_values_equal_mmcv(sc):
    """lr and momentum of every param group at every train iteration equal mmcv's (rel. error < 1e-9)."""
    k = sc["resume_iter"]
    if k is None:
        out = run_scenario(sc, make_optimizer(sc["optimizer"]))
    else:
        # Run to k, then resume from the counters with a fresh optimizer holding the saved state.
        first = make_optimizer(sc["optimizer"])
        full = run_scenario(sc, make_optimizer(sc["optimizer"]))
        run_scenario(sc, first, stop_at=k)
        opt = make_optimizer(sc["optimizer"])
        if isinstance(opt, dict):
            for name, o in opt.items():
                o.load_state_dict(first[name].state_dict())
        else:
            opt.load_state_dict(first.state_dict())
        epoch = k // sc["epoch_len"] if sc["runner"] == "epoch" else 0
        out = run_scenario(sc, opt, start=TrainState(epoch=epoch, iter=k))
        assert out["lr"] == full["lr"][k:], "a resumed run's lr differs from the uninterrupted run's"
        assert out["momentum"] == full["momentum"][k:]
    assert [it for _, it in out["iters"]] == [it for _, it in sc["iters"]]
    assert_close(out["lr"], sc["lr"], "lr")
    assert_close(out["momentum"], sc["momentum"], "momentum")


@pytest.mark.parametrize("rj", REJECTS, ids=[f"{r['kind']}-{r['config']}" for r in REJECTS])
def test_rejects_what_mmcv_rejects(rj):
    """A config mmcv 1.7.2 rejects raises ScheduleConfigError (or names the key), at config or run start."""
    sc = {
        "runner": rj["runner"], "workflow": [["train", 1]], "epoch_len": 5, "optimizer": "sgd",
        "max_epochs": rj["limit"] if rj["runner"] == "epoch" else None,
        "max_iters": rj["limit"] if rj["runner"] == "iter" else None,
        "lr_config": rj["config"] if rj["kind"] == "lr" else None,
        "momentum_config": rj["config"] if rj["kind"] == "momentum" else None,
    }
    with pytest.raises((ScheduleConfigError, ValueError, KeyError)) as info:
        run_scenario(sc, make_optimizer("sgd"))
    message = str(info.value)
    assert "allowed" in message or "must" in message or "needs" in message or "requires" in message \
        or "give exactly one" in message or "expected" in message or "same length" in message \
        or "sum to" in message, message
