"""A tiny data-parallel training run for the distributed tests, launched by torchrun.

    torchrun --standalone --nproc-per-node 2 [--max-restarts 1] tests/_dist_script.py WORK_DIR \
        [--kill-at N] [--kill-rank R] [--fsdp]

Every rank trains an MLP with dropout and BatchNorm on a learnable 3-class problem (train
loader sharded by ``resumable_loader(distributed=True)``), evaluates on a val set of odd size
(sharded, so the gather must drop the padded sample), writes a text log and checkpoints
(epoch and every 4 iterations) from rank 0, and resumes with ``resume="auto"``. At the end
each rank writes its weights to ``WORK_DIR/final_rank<r>.safetensors``, and rank 0 writes
``WORK_DIR/result.json``: the eval hook's last metrics and the same metrics computed in one
process over the whole val set. ``--kill-at N`` makes rank ``--kill-rank`` SIGKILL itself when
train iteration N starts, in the first attempt only (torchrun's restart count 0).

``--fsdp`` shards the model with FSDP instead of DDP and adds an EMA hook (sharded EMA
state); rank 0 then writes the full, gathered tensors and every rank its own buffers.

``build(distributed=False)`` gives the same run for one process (the different-world-size test).
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
from fsm_trainer.dist import init_dist
from fsm_trainer.hooks import checkpoint_hook, ema_hook, eval_hook, optimizer_hook, text_logger_hook
from fsm_trainer.hooks.dist import sync_buffers_hook
from fsm_trainer.sampler import resumable_loader

N_TRAIN, N_VAL, BATCH, EPOCHS = 40, 15, 4, 3


class Net(nn.Module):
    """MLP with BatchNorm (buffers to sync) and dropout (per-rank RNG), mmcv-style steps."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
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
    x = torch.randn(n, 6, generator=g)
    w = torch.randn(6, 3, generator=torch.Generator().manual_seed(99))
    return torch.utils.data.TensorDataset(x, (x @ w).argmax(1))


def build(*, distributed: bool | str, ema: bool = False) -> dict[str, Any]:
    """``run`` keyword arguments (and ``table``) of the test run on this process's ranks."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sharded = bool(distributed)
    train = resumable_loader(dataset(N_TRAIN, 0), BATCH, seed=0, shuffle=True, distributed=sharded)
    val = resumable_loader(dataset(N_VAL, 1), 4, shuffle=False, distributed=sharded)
    hooks: list[Any] = [
        optimizer_hook(grad_clip={"max_norm": 5.0}), text_logger_hook(interval=2), sync_buffers_hook(),
        *([ema_hook(momentum=0.1)] if ema else []),
        eval_hook(val, ["accuracy", "cross_entropy"], save_best="accuracy"),
        checkpoint_hook(1, max_keep_ckpts=2),
        checkpoint_hook(4, by_epoch=False, max_keep_ckpts=2, name="IterCheckpoint"),
    ]
    return {"table": compile_workflow([("train", 1)], max_epochs=EPOCHS), "model": model, "optimizer": optimizer,
            "data_loaders": [train], "hooks": hooks, "distributed": distributed}


def final_tensors(model: nn.Module, optimizer: Any) -> dict[str, torch.Tensor]:
    """Weights, buffers and momentum buffers, for comparing runs and ranks (full tensors on
    rank 0 and ``{}`` on the others for a sharded model: a collective then)."""
    from fsm_trainer.dist import fsdp_state_dicts, is_fsdp

    if is_fsdp(model):
        msd, osd = fsdp_state_dicts(model, optimizer)
    else:
        msd, osd = model.state_dict(), optimizer.state_dict()
    out = {f"model.{k}": v.detach().clone() for k, v in msd.items()}
    for k, v in (osd or {"state": {}})["state"].items():
        out[f"momentum.{k}"] = v["momentum_buffer"].clone()
    return out


def kill_hook(at: int) -> Hook:
    def before(s: TrainState) -> TrainState:
        if s.iter == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return s

    return Hook("Kill", "HIGHEST", {"before_train_iter": before})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("work_dir")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--kill-rank", type=int, default=1)
    p.add_argument("--fsdp", action="store_true")
    args = p.parse_args(argv)
    rank, world = init_dist("pytorch")
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.ERROR, stream=sys.stderr, format="%(message)s")
    kw = build(distributed="fsdp" if args.fsdp else True, ema=args.fsdp)
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if args.kill_at is not None and rank == args.kill_rank and first_attempt:
        kw["hooks"].append(kill_hook(args.kill_at))
    seen: list[Any] = []  # the run's context, to reach the optimizer it used

    def keep_ctx(ctx: Any) -> Hook:
        seen.append(ctx)
        return Hook("KeepContext", "LOWEST", {})

    kw["hooks"].append(keep_ctx)
    table = kw.pop("table")
    final = run(TrainState(), table, work_dir=args.work_dir, resume="auto", **kw)
    from safetensors.torch import save_file

    from fsm_trainer.hooks.eval import eval_state, predict_all
    from fsm_trainer.metrics import combine

    wd = Path(args.work_dir)
    model = kw["model"]
    tensors = final_tensors(model, seen[0].optimizer)  # under FSDP, run() rebuilt the optimizer
    if args.fsdp:  # gathered on rank 0; every rank's own buffers, to check they agree
        if rank == 0:
            save_file(tensors, str(wd / "final_full.safetensors"))
        save_file({k: b.clone() for k, b in model.named_buffers()}, str(wd / f"buffers_rank{rank}.safetensors"))
    else:
        save_file(tensors, str(wd / f"final_rank{rank}.safetensors"))
    # With FSDP every rank must take part in a forward: all evaluate the whole val set.
    whole = torch.utils.data.DataLoader(dataset(N_VAL, 1), batch_size=4)
    direct = dict(combine(["accuracy", "cross_entropy"])(*predict_all(model, whole))) if args.fsdp or rank == 0 else {}
    if rank == 0:
        last = eval_state(final)["last"]
        (wd / "result.json").write_text(json.dumps({
            "hook": last["metrics"], "direct": direct, "iter": final.iter, "epoch": final.epoch, "world": world,
        }))
    del model, kw, final
    seen.clear()
    from fsm_trainer.dist import destroy_dist

    destroy_dist()
    return 0


if __name__ == "__main__":
    sys.exit(main())
