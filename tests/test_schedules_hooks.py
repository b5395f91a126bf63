"""The LR and momentum updater hooks: bases, resume, optimizers, errors and the hot path."""

from __future__ import annotations

import pytest
import torch

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer.hooks import lr_updater, momentum_updater
from fsm_trainer.schedules import ScheduleConfigError, schedule_values
from fsm_trainer.testing import CountingLoader, noop_step


def _sgd(lr=0.1, momentum=0.9):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=momentum)


def _go(opt, hooks, *, epochs=None, iters=None, epoch_len=4, start=None, pass_optimizer=True):
    table = compile_workflow([("train", 1)], max_epochs=epochs, max_iters=iters)
    lrs = []

    def rec(s):
        lrs.append(opt.param_groups[0]["lr"])
        return s

    run(start or TrainState(), table, data_loaders=[CountingLoader(epoch_len)],
        optimizer=opt if pass_optimizer else None, hooks=[*hooks, Hook("rec", "NORMAL", {"before_train_iter": rec})],
        train_step=noop_step, val_step=noop_step)
    return lrs


def test_issue_signature_with_an_explicit_optimizer():
    """lr_updater(optimizer, **lr_config) drives that optimizer even when run() has none."""
    opt = _sgd()
    lrs = _go(opt, [lr_updater(opt, policy="step", step=[1])], epochs=2, pass_optimizer=False)
    assert lrs == schedule_values(dict(policy="step", step=[1]), 0.1, max_epochs=2, epoch_len=4)


def test_initial_lr_is_kept_and_used_as_base():
    """initial_lr is set once (setdefault), so a resumed optimizer keeps its base lr."""
    opt = _sgd(lr=0.001)
    opt.param_groups[0]["initial_lr"] = 0.1  # as loaded from a checkpoint mid-run
    lrs = _go(opt, [lr_updater(policy="step", step=[1])], epochs=2, start=TrainState(epoch=1, iter=4))
    assert lrs == pytest.approx([0.01] * 4)
    assert opt.param_groups[0]["initial_lr"] == 0.1


def test_momentum_writes_betas_for_adam():
    """For Adam-like optimizers the momentum schedule writes betas[0] and keeps betas[1]."""
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, betas=(0.9, 0.99))
    _go(opt, [momentum_updater(policy="step", step=[1], gamma=0.5)], epochs=2)
    assert opt.param_groups[0]["betas"] == (0.45, 0.99)
    assert opt.param_groups[0]["initial_momentum"] == 0.9


def test_momentum_needs_momentum_or_betas():
    """An optimizer without momentum or betas is rejected with what is needed."""
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match=r"'momentum' .*or 'betas'"):
        _go(opt, [momentum_updater(policy="step", step=[1])], epochs=1)


def test_run_level_errors():
    """by_epoch=True in an iter run and a missing optimizer fail before any data is touched."""
    with pytest.raises(ScheduleConfigError, match="by_epoch=True needs an epoch-based run"):
        _go(_sgd(), [lr_updater(policy="step", step=[1])], iters=4)
    with pytest.raises(ValueError, match="needs an optimizer"):
        _go(_sgd(), [lr_updater(policy="step", step=[1])], epochs=1, pass_optimizer=False)


def test_names_priorities_and_points():
    """Hooks carry mmcv's class names and priorities, and only the points they need."""
    table = compile_workflow([("train", 1)], max_epochs=2)
    seen = {}

    def keep(factory):
        def wrapped(ctx):
            h = factory(ctx)
            seen[h.name] = h
            return h

        return wrapped

    run(TrainState(), table, data_loaders=[CountingLoader(2)], optimizer=_sgd(),
        hooks=[keep(lr_updater(policy="step", step=[1])),
               keep(momentum_updater(policy="cyclic", warmup="linear", warmup_iters=2))],
        train_step=noop_step, val_step=noop_step)
    lr, mom = seen["StepLrUpdaterHook"], seen["CyclicMomentumUpdaterHook"]
    assert (lr.priority, mom.priority) == (10, 30)
    assert set(lr.on) == {"before_run", "before_train_epoch"}  # by_epoch without warmup: nothing per iteration
    assert set(mom.on) == {"before_run", "before_train_iter"}


def test_hook_functions_return_their_input():
    """Schedule hooks change param groups, never the state: each function returns its input object."""
    table = compile_workflow([("train", 1)], max_epochs=2)
    opt = _sgd()
    checked = []

    def checking(factory):
        def wrapped(ctx):
            h = factory(ctx)
            on = {}
            for point, fn in h.on.items():
                def check(s, fn=fn):
                    out = fn(s)
                    checked.append(out is s)
                    return out
                on[point] = check
            return Hook(h.name, h.priority, on)

        return wrapped

    run(TrainState(), table, data_loaders=[CountingLoader(3)], optimizer=opt,
        hooks=[checking(lr_updater(policy="CosineAnnealing", min_lr=0, by_epoch=False, warmup="exp",
                                   warmup_iters=2)),
               checking(momentum_updater(policy="step", step=[1], warmup="constant", warmup_iters=4))],
        train_step=noop_step, val_step=noop_step)
    assert checked and all(checked)


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_resume_anywhere_in_an_iter_run_equals_uninterrupted(k):
    """An iter run resumed at any k (same optimizer state) continues the uninterrupted lr sequence."""
    cfg = dict(policy="OneCycle", max_lr=0.5, three_phase=True)
    opt = _sgd()
    full = _go(opt, [lr_updater(**cfg)], iters=9)
    opt2 = _sgd()
    _go(opt2, [lr_updater(**cfg)], iters=k)
    opt3 = _sgd()
    opt3.load_state_dict(opt2.state_dict())
    assert _go(opt3, [lr_updater(**cfg)], iters=9, start=TrainState(iter=k)) == full[k:]
