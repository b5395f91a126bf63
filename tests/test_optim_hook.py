"""The optimizer hook's options: grad_clip, cumulative_iters, detect_anomalous_params and Amp."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hooks import Amp, optimizer_hook
from fsm_trainer.hooks.optimizer import anomalous_params

X = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0], [-1.0, 1.0]])
Y = torch.tensor([[1.0], [0.0], [2.0], [-1.0]])


def _model() -> nn.Linear:
    m = nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.3, -0.2]]))
        m.bias.fill_(0.1)
    return m


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(X[i % 4 : i % 4 + 1], Y[i % 4 : i % 4 + 1]) for i in range(n)]


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).mean()


def _run(model, opt, hooks, *, epochs=None, iters=None, epoch_len=4, start=None, train_step=None, val_step=None):
    table = compile_workflow([("train", 1)], max_epochs=epochs, max_iters=iters)
    kw = {"train_step": train_step, "val_step": val_step} if train_step else {"loss_fn": _mse}
    return run(start or TrainState(), table, data_loaders=[_batches(epoch_len)], model=model, optimizer=opt,
               hooks=hooks, **kw)


def _manual_cumulative(k: int, n: int) -> nn.Linear:
    """mmcv's GradientCumulativeOptimizerHook by hand: groups of k, the short tail divided by its size."""
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    tail = n % k
    for i, (x, y) in enumerate(_batches(n)):
        factor = k if i < n - tail else tail
        (_mse(m(x), y) / factor).backward()
        if (i + 1) % k == 0 or i + 1 == n:
            opt.step()
            opt.zero_grad()
    return m


@pytest.mark.parametrize(("k", "by"), [(1, "epoch"), (2, "epoch"), (3, "epoch"), (3, "iter"), (8, "iter")])
def test_cumulative_iters_equals_hand_accumulation(k, by):
    """Weights after a run with cumulative_iters=k equal hand-written accumulation (tail included)."""
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    steps = []
    opt.register_step_post_hook(lambda *a: steps.append(1))
    if by == "epoch":
        _run(m, opt, [optimizer_hook(cumulative_iters=k)], epochs=2)  # 8 iterations, groups span epochs
    else:
        _run(m, opt, [optimizer_hook(cumulative_iters=k)], iters=8)
    want = _manual_cumulative(k, 8)
    assert torch.allclose(m.weight, want.weight, atol=1e-7) and torch.allclose(m.bias, want.bias, atol=1e-7)
    assert len(steps) == -(-8 // k)


def test_cumulative_resume_off_group_warns(caplog):
    """Starting at an iter that is not a multiple of cumulative_iters logs mmcv's warning."""
    m = _model()
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        _run(m, torch.optim.SGD(m.parameters(), lr=0.1), [optimizer_hook(cumulative_iters=3)],
             iters=8, start=TrainState(iter=4))
    assert "inside a group of cumulative_iters=3, with no accumulated gradients" in caplog.text
    assert "divided by 2" in caplog.text


def test_grad_clip_logs_the_norm_and_clips():
    """grad_clip clips to max_norm and logs the norm before clipping as grad_norm."""
    m = _model()
    seen = []

    def factory(ctx):
        hook = optimizer_hook(dict(max_norm=1e-3, norm_type=2))(ctx)
        seen.append(ctx.log_buffer)
        return hook

    _run(m, torch.optim.SGD(m.parameters(), lr=0.1), [factory], iters=2)
    norms = seen[0].values["grad_norm"]
    assert len(norms) == 2 and norms[0] > 1e-3


def test_detect_anomalous_params_logs_unused(caplog):
    """detect_anomalous_params logs (ERROR) each trainable parameter outside the loss's graph."""

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(2, 1)
            self.unused = nn.Linear(2, 1)

        def forward(self, x):
            return self.used(x)

    m = Two()
    with caplog.at_level(logging.ERROR, logger="fsm_trainer"):
        _run(m, torch.optim.SGD(m.parameters(), lr=0.1), [optimizer_hook(detect_anomalous_params=True)], iters=1)
    assert "unused.weight with shape (1, 2) is not in the computational graph" in caplog.text
    assert "used.weight" not in caplog.text.replace("unused.weight", "")
    assert [n for n, _ in anomalous_params(m(X).sum(), m)] == ["unused.weight", "unused.bias"]


def test_amp_bf16_on_cpu_runs_forward_under_autocast():
    """Amp() on CPU is bf16 autocast without a scaler; the forward sees autocast, training moves the weights."""
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    amp = Amp(device_type="cpu")
    train, val = amp.steps(m, opt, loss_fn=_mse)
    flags = []
    m.register_forward_hook(lambda mod, i, o: flags.append((torch.is_autocast_enabled("cpu"), o.dtype)))
    before = m.weight.detach().clone()
    hooks = [optimizer_hook(amp=amp)]
    _run(m, opt, hooks, iters=3, train_step=train, val_step=val)
    assert flags and all(f == (True, torch.bfloat16) for f in flags)
    assert not torch.equal(before, m.weight)
    assert amp.scaler is None


@pytest.mark.parametrize("loss_scale", [256.0, "dynamic", {"init_scale": 128.0, "growth_interval": 1}])
def test_amp_fp16_scales_the_loss_and_keeps_its_state(loss_scale):
    """fp16 uses a GradScaler (static, dynamic or from a dict); its state is the hook's state."""
    m, ref = _model(), _model()
    opt, ref_opt = torch.optim.SGD(m.parameters(), lr=0.1), torch.optim.SGD(ref.parameters(), lr=0.1)
    amp = Amp(device_type="cpu", dtype="float16", loss_scale=loss_scale)
    train, val = amp.steps(m, opt, loss_fn=_mse)
    built = []

    def factory(ctx):
        built.append(optimizer_hook(dict(max_norm=100.0), amp=amp)(ctx))
        return built[0]

    _run(m, opt, [factory], iters=4, train_step=train, val_step=val)
    _run(ref, ref_opt, [optimizer_hook(dict(max_norm=100.0))], iters=4)
    state = built[0].state_dict()
    if loss_scale == "dynamic":
        # 65536 overflows fp16 here: the scaler skips those steps and halves its scale
        assert state["loss_scaler"]["scale"] < 65536.0
    else:
        assert torch.allclose(m.weight, ref.weight, atol=2e-2)  # unscaled gradients: same training, fp16 noise
    if loss_scale == 256.0:
        assert state["loss_scaler"]["scale"] == 256.0  # a static scale stays put
    built[0].load_state_dict(state)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"cumulative_iters": 0}, "cumulative_iters"),
    ({"grad_clip": {"max_norm": 1, "nrom_type": 2}}, "nrom_type"),
    ({"amp": "fp16"}, "Amp"),
])
def test_optimizer_hook_rejects_bad_options(kwargs, match):
    """Bad options fail when the hook is configured, naming the option."""
    with pytest.raises((ValueError, TypeError), match=match):
        optimizer_hook(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dtype": "float8"}, "float8"), ({"loss_scale": "auto"}, "loss_scale"), ({"device_type": "tpu"}, "device_type"),
])
def test_amp_rejects_bad_options(kwargs, match):
    """Amp names the bad option and what is allowed."""
    with pytest.raises(ValueError, match=match):
        Amp(**kwargs)
