"""Train-step time of a small MLP, one process vs data-parallel ranks (gloo on CPU).

Run::

    python benchmarks/bench_dist.py [--iters 200] [--batch 64]              # one process
    torchrun --standalone --nproc-per-node 2 benchmarks/bench_dist.py       # 2 ranks, DDP
    torchrun --standalone --nproc-per-node 2 benchmarks/bench_dist.py --fsdp  # 2 ranks, FSDP

Each rank runs ``--iters`` train iterations of ``--batch`` samples through :func:`fsm_trainer.run`
(optimizer hook, no logger) after 20 warm-up iterations and prints the median of 3 rounds
(one run; the rounds are consecutive stretches of it):
seconds per iteration and samples per second over all ranks. Uses one thread per process.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer.dist import get_dist_info, init_dist
from fsm_trainer.hooks import optimizer_hook
from fsm_trainer.sampler import resumable_loader


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--fsdp", action="store_true", help="shard with FSDP (one unit: the whole model) instead of DDP")
    args = p.parse_args()
    torch.set_num_threads(1)
    distributed: bool | str = "RANK" in os.environ
    if distributed:
        init_dist("pytorch")
    rank, world = get_dist_info()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                          nn.Linear(args.hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    marks = [20 + k * args.iters for k in range(4)]
    n = args.batch * world * marks[-1]
    data = torch.utils.data.TensorDataset(torch.randn(n, 64), torch.randint(0, 10, (n,)))
    stamps: list[float] = []

    def stamp(s: TrainState) -> TrainState:
        if s.iter in marks:
            stamps.append(time.perf_counter())
        return s

    def last(s: TrainState) -> TrainState:
        stamps.append(time.perf_counter())
        return s

    loader = resumable_loader(data, args.batch, distributed=bool(distributed))
    if distributed and args.fsdp:
        from fsm_trainer.dist import shard_model

        opt = shard_model(model, opt)
        distributed = "fsdp"
    run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[loader], model=model,
        optimizer=opt, loss_fn=nn.functional.cross_entropy, distributed=distributed,
        hooks=[optimizer_hook(), Hook("Stamp", "LOWEST", {"before_train_iter": stamp, "after_run": last})])
    times = [(b - a) / args.iters for a, b in itertools.pairwise(stamps)][:3]
    if rank == 0:
        t = statistics.median(times)
        kind = "fsdp" if distributed == "fsdp" else "ddp" if distributed else "single"
        print(f"ranks={world} {kind} batch/rank={args.batch} hidden={args.hidden}: {t * 1e3:.2f} ms/iter, "
              f"{args.batch * world / t:.0f} samples/s")
    if distributed:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
