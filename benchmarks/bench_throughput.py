"""Training throughput (images/s) of a small CNN: fsm_trainer's ``run()`` against a hand-written loop.

Run: ``python benchmarks/bench_throughput.py [--device cuda] [--iters 300] [--batch-size 128] [--rounds 3]``.

Both variants train the same CNN (three 3x3 convolutions, 32x32 RGB inputs, 10 classes) from
the same initial weights, with SGD and momentum, on the same random batches kept on the host
(pinned on CUDA), in the same process, interleaved over ``--rounds`` rounds:

* ``hand-written``: for each batch, copy it to the device (``non_blocking``), forward, loss,
  ``zero_grad``/``backward``/``step``, and ``loss.item()`` every 50 iterations (a log line);
* ``fsm_trainer``: ``run()`` with ``device=``, ``loss_fn=`` and the shipped optimizer, timer
  and text logger (interval 50) hooks; the runner moves each batch.

The figure is the median over rounds of images per second, timed from the first batch to the
last step finished on the device (``torch.cuda.synchronize``); a warm-up round runs first.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hooks import default_hooks


def small_cnn() -> nn.Module:
    """Three 3x3 convolutions with BatchNorm and ReLU, global pooling, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--distinct-batches", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("fsm_trainer").setLevel(logging.WARNING)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    g = torch.Generator().manual_seed(0)
    pool = []
    for _ in range(args.distinct_batches):
        x = torch.randn(args.batch_size, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (args.batch_size,), generator=g)
        pool.append((x.pin_memory(), y.pin_memory()) if cuda else (x, y))
    batches = [pool[i % len(pool)] for i in range(args.iters)]
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in small_cnn().state_dict().items()}
    loss_fn = nn.CrossEntropyLoss()
    table = compile_workflow([("train", 1)], max_epochs=1)

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = small_cnn()
        model.load_state_dict(init)
        model.to(device)
        return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

    def hand_written() -> float:
        model, opt = fresh()
        model.train()
        sync()
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (i + 1) % 50 == 0:
                loss.item()
        sync()
        return time.perf_counter() - t0

    def fsm() -> float:
        model, opt = fresh()
        sync()
        t0 = time.perf_counter()
        run(TrainState(), table, model=model, optimizer=opt, data_loaders=[batches], loss_fn=loss_fn,
            hooks=default_hooks(log_interval=50), device=device)
        sync()
        return time.perf_counter() - t0

    variants: dict[str, Callable[[], float]] = {"hand-written": hand_written, "fsm_trainer": fsm}
    for fn in variants.values():  # warm-up (cuDNN algorithm choice, allocator)
        fn()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            rates[name].append(args.iters * args.batch_size / fn())
    print(f"small CNN on {device}: {args.iters} iterations x batch {args.batch_size}, {args.rounds} rounds "
          f"(median images/s)")
    base = statistics.median(rates["hand-written"])
    for name, rs in rates.items():
        med = statistics.median(rs)
        print(f"  {name:<13} {med:10.0f} images/s  ({med / base:6.1%} of hand-written; rounds: "
              f"{', '.join(f'{r:.0f}' for r in rs)})")


if __name__ == "__main__":
    main()
