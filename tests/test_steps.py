"""Step adapters: a model with ``train_step`` only trains train-only workflows, as in mmcv."""

from __future__ import annotations

import pytest
import torch

from fsm_trainer import ArgumentTypeError, TrainState, compile_workflow, run


class TrainOnly(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def train_step(self, batch, optimizer):
        loss = (self.w * batch).sum()
        return {"loss": loss, "log_vars": {"loss": loss.detach()}, "num_samples": 1}


def test_train_step_only_model_trains_a_train_only_workflow():
    model = TrainOnly()
    final = run(TrainState(), compile_workflow([("train", 1)], max_epochs=2), model=model,
                data_loaders=[[torch.tensor(1.0)] * 3])
    assert (final.epoch, final.iter) == (2, 6)


def test_train_step_only_model_with_a_val_phase_is_refused_before_any_work():
    seen = []
    loader = [torch.tensor(1.0)]

    class Counting(list):
        def __iter__(self):
            seen.append(1)
            return super().__iter__()

    with pytest.raises(ArgumentTypeError, match=r"has no val_step, but the workflow .* has a val phase"):
        run(TrainState(), compile_workflow([("train", 1), ("val", 1)], max_epochs=1), model=TrainOnly(),
            data_loaders=[Counting(loader), Counting(loader)])
    assert seen == []
