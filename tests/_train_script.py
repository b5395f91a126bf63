"""A tiny shuffled, dropout-using training run for the resume, kill and replay tests.

In-process: ``build(kind)`` returns the keyword arguments of :func:`fsm_trainer.run` (and is the
``--build`` function of ``python -m fsm_trainer.replay``). As a script::

    python tests/_train_script.py WORK_DIR --kind epoch|iter [--resume] [--kill-at N] [--term-at N] [--fault SPEC]

trains to the end (resuming from WORK_DIR when ``--resume``), and writes the final weights and
EMA values to ``WORK_DIR/final.safetensors``. ``--kill-at N`` SIGKILLs the process at the start
of train iteration N; ``--term-at N`` sends it SIGTERM there (preemption); ``--fault SPEC``
SIGKILLs it at a named point of a checkpoint write (``fsm_trainer.checkpoint.kill_at``).
``forked`` runs ``main`` in a process forked from a server that has imported torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer.hooks import checkpoint_hook, ema_hook, optimizer_hook, text_logger_hook
from fsm_trainer.sampler import resumable_loader

WORKFLOWS = {
    "epoch": ([("train", 1), ("val", 1)], {"max_epochs": 3}),
    "iter": ([("train", 7), ("val", 3)], {"max_iters": 30}),
}


class Net(nn.Module):
    """An MLP with dropout and mmcv-style steps."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def train_step(self, batch: Any, optimizer: Any = None) -> dict[str, Any]:
        x, y = batch
        loss = self.loss(self(x), y)
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(x)}

    def val_step(self, batch: Any, optimizer: Any = None) -> dict[str, Any]:
        return self.train_step(batch)


def dataset(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g))


class Augmented(torch.utils.data.Dataset):
    """``base`` with random augmentation drawn from python's, NumPy's and torch's global RNGs."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Any:
        import random

        import numpy as np

        x, y = self.base[i]
        noise = torch.randn(x.shape) * 0.1 + float(np.random.uniform(-0.1, 0.1)) + random.uniform(-0.1, 0.1)
        return x + noise, y


def build(kind: str = "epoch", *, workers: int = 0, seed: int = 0, checkpoints: bool = True,
          logger: bool = True, max_keep: int = 3, augment: bool = False) -> dict[str, Any]:
    """Model, optimizer, loaders, table and hooks of the test run (``run`` keyword arguments).

    ``augment``: random augmentation in the train dataset, loaded with ``seed_samples=True``."""
    torch.set_num_threads(1)  # the same float results in the test process and in subprocesses
    torch.manual_seed(seed)
    if augment:  # the dataset draws from these too
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
    workflow, limit = WORKFLOWS[kind]
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    extra = {"num_workers": workers}
    if augment:
        extra["seed_samples"] = True
    data = Augmented(dataset(40, seed)) if augment else dataset(40, seed)
    train = resumable_loader(data, batch_size=4, seed=seed, shuffle=True, **extra)
    val = resumable_loader(dataset(16, seed + 1), batch_size=8, seed=seed, shuffle=False)
    hooks: list[Any] = [optimizer_hook(), ema_hook(momentum=0.1, warm_up=1)]
    if logger:
        hooks.append(text_logger_hook(interval=3))
    if checkpoints and kind == "epoch":
        hooks += [checkpoint_hook(1, max_keep_ckpts=min(max_keep, 2) if max_keep > 0 else -1, preempt=False),
                  checkpoint_hook(4, by_epoch=False, max_keep_ckpts=max_keep, name="IterCheckpoint")]
    elif checkpoints:
        hooks.append(checkpoint_hook(4, max_keep_ckpts=max_keep))
    return {
        "table": compile_workflow(workflow, **limit), "model": model, "optimizer": optimizer,
        "data_loaders": [train, val] if kind == "epoch" else [train, val], "hooks": hooks,
    }


def final_tensors(kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's weights and the EMA hook's averages, for comparing runs."""
    out = {f"model.{k}": v.detach().clone() for k, v in kwargs["model"].state_dict().items()}
    for k, v in kwargs["optimizer"].state_dict()["state"].items():
        out[f"momentum.{k}"] = v["momentum_buffer"].clone()
    return out


def self_signal_hook(at: int, sig: int) -> Hook:
    """Send ``sig`` to this process when train iteration ``at`` starts (once per process)."""

    def before(s: TrainState) -> TrainState:
        if s.iter == at:
            os.kill(os.getpid(), sig)
        return s

    return Hook("SelfSignal", "HIGHEST", {"before_train_iter": before})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("work_dir")
    p.add_argument("--kind", default="epoch")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--term-at", type=int)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--fault")
    args = p.parse_args(argv)
    if args.fault:
        from fsm_trainer import checkpoint as C

        C.FAULTS.hook = C.kill_at(args.fault)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    kw = build(args.kind, workers=args.workers)
    if args.kill_at is not None:
        kw["hooks"].append(self_signal_hook(args.kill_at, signal.SIGKILL))
    if args.term_at is not None:
        kw["hooks"].append(self_signal_hook(args.term_at, signal.SIGTERM))
    table = kw.pop("table")
    final = run(TrainState(), table, work_dir=args.work_dir, resume="auto" if args.resume else None, **kw)
    if final.stop:  # preempted: a checkpoint was saved
        print(json.dumps({"stopped": True, "iter": final.iter}))
        return 0
    from safetensors.torch import save_file

    save_file(final_tensors({**kw}), str(Path(args.work_dir) / "final.safetensors"))
    print(json.dumps({"stopped": False, "iter": final.iter, "epoch": final.epoch}))
    return 0


def forked(argv: list[str], output: str) -> None:
    """``main(argv)`` with stdout and stderr in ``output + ".out"`` and ``".err"``, exiting with its
    status: the target of a process forked by a multiprocessing forkserver."""
    for fd, suffix in ((1, ".out"), (2, ".err")):
        target = os.open(output + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.exit(main(argv))


if __name__ == "__main__":
    sys.exit(main())
