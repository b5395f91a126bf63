"""Host syncs per training iteration of fsm_trainer's shipped path, counted on the CPU.

Run: ``python benchmarks/bench_sync.py [--iters 200] [--interval 50]``.

On an accelerator, reading a tensor's value on the host (``.item()``, ``.tolist()``,
``float(t)``, ``bool(t)``/``if t:``, ``int(t)``, ``t.numpy()``, ``t.cpu()``) waits until the
device has finished every queued kernel: a host sync. This script replaces those
``torch.Tensor`` methods by counting wrappers and runs the digits-like MLP (64-128-10, batch
32, random data) for ``--iters`` iterations with the shipped hooks: optimizer, LR updater
(step policy), iteration timer and text logger (interval ``--interval``). It reports the calls
per iteration, apart for the iterations where the logger logs (which read the interval's
values back: the goal is 0 on every other iteration). Calls made from C++ inside torch are
not seen; the figure counts what Python code in the runner, hooks and step asks for.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer.examples.digits import DigitsNet
from fsm_trainer.hooks import iter_timer_hook, lr_updater, optimizer_hook, text_logger_hook

SYNC_METHODS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu")


@contextlib.contextmanager
def counting_syncs() -> Iterator[collections.Counter[str]]:
    """Count calls of :data:`SYNC_METHODS` on any tensor while the context is open."""
    counts: collections.Counter[str] = collections.Counter()
    saved = {name: torch.Tensor.__dict__.get(name) for name in SYNC_METHODS}

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(self, *args, **kwargs)

        wrapper.__name__ = name
        return wrapper

    for name in SYNC_METHODS:
        setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    try:
        yield counts
    finally:
        for name, original in saved.items():
            if original is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, original)


def count_syncs(iters: int = 200, interval: int = 50, *, seed: int = 0) -> list[dict[str, int]]:
    """Run the digits-like model for ``iters`` iterations; return the sync calls of each iteration.

    An iteration's calls are those from its first hook point (``before_train_iter``) to the
    next iteration's, so they include its step, its hooks and the next batch's fetch.
    """
    torch.manual_seed(seed)
    model = DigitsNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    batches = [(torch.rand(32, 64), torch.randint(0, 10, (32,))) for _ in range(20)]
    table = compile_workflow([("train", 1)], max_iters=iters)
    per_iter: list[dict[str, int]] = []

    with counting_syncs() as counts:
        last: list[collections.Counter[str]] = [collections.Counter()]

        def mark(s: TrainState) -> TrainState:
            if s.iter > 0:
                per_iter.append(dict(counts - last[0]))
            last[0] = collections.Counter(counts)
            return s

        def finish(s: TrainState) -> TrainState:
            per_iter.append(dict(counts - last[0]))
            return s

        boundary = Hook("SyncCounter", "HIGHEST", {"before_train_iter": mark, "after_run": finish})
        hooks = [
            optimizer_hook(), lr_updater(policy="step", step=[iters // 2], by_epoch=False),
            iter_timer_hook(), text_logger_hook(interval, by_epoch=False), boundary,
        ]
        run(TrainState(), table, model=model, optimizer=optimizer, data_loaders=[batches], hooks=hooks,
            device="cpu")
    return per_iter


def summarize(per_iter: list[dict[str, int]], interval: int) -> dict[str, Any]:
    """Syncs per iteration between logging points and at them (mean, max, by method)."""
    logging_iters = {i for i in range(len(per_iter)) if (i + 1) % interval == 0}
    quiet = [sum(c.values()) for i, c in enumerate(per_iter) if i not in logging_iters]
    loud = [sum(c.values()) for i, c in enumerate(per_iter) if i in logging_iters]
    by_method: collections.Counter[str] = collections.Counter()
    for i in logging_iters:
        by_method.update(per_iter[i])
    return {
        "iterations": len(per_iter),
        "between_logging": {"mean": sum(quiet) / max(len(quiet), 1), "max": max(quiet, default=0),
                            "iterations": len(quiet)},
        "at_logging": {"mean": sum(loud) / max(len(loud), 1), "max": max(loud, default=0),
                       "iterations": len(loud), "by_method": dict(by_method)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--interval", type=int, default=50)
    args = parser.parse_args()
    logging.getLogger("fsm_trainer").setLevel(logging.WARNING)
    res = summarize(count_syncs(args.iters, args.interval), args.interval)
    quiet, loud = res["between_logging"], res["at_logging"]
    print(f"{res['iterations']} iterations, text logger interval {args.interval}")
    print(f"  between logging points: {quiet['mean']:.2f} syncs/iter (max {quiet['max']}, "
          f"{quiet['iterations']} iterations)")
    print(f"  at logging points:      {loud['mean']:.2f} syncs/iter (max {loud['max']}, "
          f"{loud['iterations']} iterations; by method: {loud['by_method']})")


if __name__ == "__main__":
    main()
