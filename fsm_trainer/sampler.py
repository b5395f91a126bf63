"""A sampler whose order is a pure function of ``(seed, epoch)`` and that starts anywhere in O(1).

:class:`ResumableSampler` is what makes a mid-epoch resume exact without reading the batches
already consumed: the order of epoch ``e`` is ``randperm(n, seed=mix(seed, e))``, and
:meth:`~ResumableSampler.set_position` makes the next pass start at any index of it. It runs in
the main process, so it works unchanged with DataLoader workers.

>>> s = ResumableSampler(6, seed=1)
>>> full = list(s)
>>> s.set_position(0, 4)
>>> list(s) == full[4:]
True
>>> list(s) == full             # the start offset applies to one pass only
True
>>> s.set_epoch(1)
>>> list(s) != full
True

Distributed (``num_replicas`` ranks): every rank computes the same permutation of epoch ``e``,
pads it to a multiple of ``num_replicas`` by repeating its head (as torch's
``DistributedSampler``), and takes its strided slice ``rank, rank + W, ...``. The ranks'
first ``k`` samples together are exactly the first ``k * W`` samples of the global order, so a
position is one number for the whole job:

>>> ranks = [ResumableSampler(5, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
>>> a, b = (list(r) for r in ranks)
>>> len(a) == len(b) == 3 and sorted(a[:2] + b[:2] + a[2:]) == list(range(5))
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for ``(seed, epoch)``; neighbouring pairs give unrelated seeds.

    >>> epoch_seed(0, 1) != epoch_seed(1, 0)
    True
    """
    digest = hashlib.sha256(f"fsm_trainer:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def epoch_order(n: int, seed: int, epoch: int, *, shuffle: bool = True) -> torch.Tensor:
    """The indices ``0..n-1`` in the order epoch ``epoch`` visits them.

    >>> epoch_order(4, 0, 0, shuffle=False).tolist()
    [0, 1, 2, 3]
    >>> sorted(epoch_order(5, 0, 3).tolist())
    [0, 1, 2, 3, 4]
    """
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=g)


class ResumableSampler(Sampler[int]):
    """Shuffle (or not) by ``(seed, epoch)``; start the next pass at any index in O(1).

    Args:
        data_source: the dataset (anything with ``len``) or its length.
        seed: the run's data seed (the same on every rank).
        shuffle: ``False`` visits ``0..n-1`` in order.
        loader_generator: a ``torch.Generator`` given to the DataLoader as ``generator=``;
            it is re-seeded from ``(seed, epoch, start, rank)`` whenever the position is set,
            so the worker seeds the DataLoader draws from it do not depend on where the run
            resumed.
        num_replicas, rank: shard the epoch's order over ``num_replicas`` processes (see the
            module docstring); ``1, 0`` (the default) is a single process.

    ``len()`` is the number of samples this rank visits per epoch (the dataset length in a
    single process; ``ceil(n / num_replicas)`` distributed), whatever the start position, so
    ``len(loader)`` does not change when a pass starts in the middle.
    """

    def __init__(
        self, data_source: Sized | int, *, seed: int = 0, shuffle: bool = True,
        loader_generator: torch.Generator | None = None, num_replicas: int = 1, rank: int = 0,
    ) -> None:
        n = data_source if isinstance(data_source, int) else len(data_source)
        if isinstance(n, bool) or n < 0:
            msg = f"data_source must have a length >= 0, got {n!r}"
            raise ValueError(msg)
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
            msg = f"num_replicas must be an int >= 1, got {num_replicas!r}"
            raise ValueError(msg)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            msg = f"rank must be an int in [0, {num_replicas}), got {rank!r}"
            raise ValueError(msg)
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.num_samples = -(-n // num_replicas)
        self.epoch = 0
        self.start = 0
        self.loader_generator = loader_generator
        self._reseed()

    def _reseed(self) -> None:
        if self.loader_generator is not None:
            # Rank 0 keeps the single-process seeds, so a 1-rank job equals a plain run.
            offset = self.epoch * 1_000_003 + self.start
            seed = self.seed if self.rank == 0 else epoch_seed(self.seed, 7_919 * self.rank)
            self.loader_generator.manual_seed(epoch_seed(seed, offset))

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch``, from its first index."""
        self.set_position(epoch, 0)

    def set_position(self, epoch: int, start: int) -> None:
        """Make the next pass epoch ``epoch``, starting at index ``start`` of this rank's order.

        A ``start`` past the end (the last batch was partial) means an empty pass.
        """
        if start < 0:
            msg = f"start must be >= 0, got {start}"
            raise ValueError(msg)
        self.epoch, self.start = epoch, min(start, self.num_samples)
        self._reseed()

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        order = epoch_order(self.n, self.seed, self.epoch, shuffle=self.shuffle)
        if self.num_replicas == 1:
            return iter(order[start:].tolist())
        total = self.num_samples * self.num_replicas
        if total > self.n and self.n:
            order = order.repeat(-(-total // self.n))[:total]
        first = self.rank + start * self.num_replicas
        return iter(order[first:total:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, int]:
        """``seed``, ``epoch``, ``start`` (the position the next pass begins at), ``num_replicas``, ``rank``."""
        return {"seed": self.seed, "epoch": self.epoch, "start": self.start,
                "num_replicas": self.num_replicas, "rank": self.rank}


def resumable_loader(
    dataset: Any, batch_size: int = 1, *, seed: int = 0, shuffle: bool = True, distributed: bool = False,
    **kwargs: Any,
) -> DataLoader[Any]:
    """A ``DataLoader`` over ``dataset`` with a :class:`ResumableSampler` and its own generator.

    ``distributed=True`` shards the data over the ranks of the current process group
    (:func:`fsm_trainer.dist.init_dist` first); ``batch_size`` is then per rank, as mmcv's
    ``samples_per_gpu``. Extra keyword arguments (``num_workers``, ``drop_last``,
    ``collate_fn``, ...) go to the DataLoader; ``sampler``, ``shuffle`` and ``generator`` are
    set here.

    >>> loader = resumable_loader(list(range(10)), batch_size=4, seed=0, shuffle=False)
    >>> [b.tolist() for b in loader]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    for key in ("sampler", "batch_sampler", "generator", "shuffle"):
        if key in kwargs:
            msg = f"resumable_loader sets {key!r} itself; remove it from the arguments"
            raise TypeError(msg)
    rank, world = 0, 1
    if distributed:
        from fsm_trainer.dist import get_dist_info, is_dist

        if not is_dist():
            msg = "resumable_loader(distributed=True) needs a process group: call fsm_trainer.dist.init_dist() first"
            raise RuntimeError(msg)
        rank, world = get_dist_info()
    g = torch.Generator()
    sampler = ResumableSampler(dataset, seed=seed, shuffle=shuffle, loader_generator=g, num_replicas=world, rank=rank)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, generator=g, **kwargs)
