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

Random augmentation in the dataset (``__getitem__`` drawing from python's, NumPy's or torch's
global RNG) is made exact too by ``resumable_loader(..., seed_samples=True)``: each sample is
loaded with those RNGs seeded from ``(seed, epoch, index)`` (:class:`SampleSeeded`), so its
augmentation is the same whichever worker loads it, wherever the run resumed, and on any
number of workers or ranks.

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
import random
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from fsm_trainer.errors import ArgumentTypeError, DataError, ProcessGroupError


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
        with_epoch: yield ``(epoch, index)`` pairs instead of indices (for :class:`SampleSeeded`).

    ``len()`` is the number of samples this rank visits per epoch (the dataset length in a
    single process; ``ceil(n / num_replicas)`` distributed), whatever the start position, so
    ``len(loader)`` does not change when a pass starts in the middle.
    """

    def __init__(
        self, data_source: Sized | int, *, seed: int = 0, shuffle: bool = True,
        loader_generator: torch.Generator | None = None, num_replicas: int = 1, rank: int = 0,
        with_epoch: bool = False,
    ) -> None:
        n = data_source if isinstance(data_source, int) else len(data_source)
        if isinstance(n, bool) or n < 0:
            msg = f"data_source must have a length >= 0, got {n!r}"
            raise DataError(msg)
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
            msg = f"num_replicas must be an int >= 1, got {num_replicas!r}"
            raise DataError(msg)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            msg = f"rank must be an int in [0, {num_replicas}), got {rank!r}"
            raise DataError(msg)
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.num_samples = -(-n // num_replicas)
        self.epoch = 0
        self.start = 0
        self.loader_generator = loader_generator
        self.with_epoch = with_epoch
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
            raise DataError(msg)
        self.epoch, self.start = epoch, min(start, self.num_samples)
        self._reseed()

    def __iter__(self) -> Iterator[Any]:
        start, self.start = self.start, 0
        order = epoch_order(self.n, self.seed, self.epoch, shuffle=self.shuffle)
        if self.num_replicas == 1:
            mine = order[start:].tolist()
        else:
            total = self.num_samples * self.num_replicas
            if total > self.n and self.n:
                order = order.repeat(-(-total // self.n))[:total]
            first = self.rank + start * self.num_replicas
            mine = order[first:total:self.num_replicas].tolist()
        if self.with_epoch:
            e = self.epoch
            return iter([(e, i) for i in mine])
        return iter(mine)

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, int]:
        """``seed``, ``epoch``, ``start`` (the position the next pass begins at), ``num_replicas``, ``rank``."""
        return {"seed": self.seed, "epoch": self.epoch, "start": self.start,
                "num_replicas": self.num_replicas, "rank": self.rank}


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 63-bit seed sample ``index`` of epoch ``epoch`` is loaded with (a pure function)."""
    digest = hashlib.blake2b(f"fsm_trainer.sample:{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SampleSeeded(torch.utils.data.Dataset[Any]):
    """``dataset`` indexed by ``(epoch, index)``: ``dataset[index]`` runs with python's, NumPy's
    and torch's (CPU) global RNGs seeded by :func:`sample_seed`, so random augmentation is a
    function of ``(seed, epoch, index)``.

    In a DataLoader worker the worker's RNGs are simply re-seeded; in the main process
    (``num_workers=0``) their states are put back after each batch (``__getitems__``), so the
    training loop's own randomness (dropout...) is not disturbed.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        s = sample_seed(self.seed, epoch, index)
        random.seed(s)
        np.random.seed(s & 0xFFFF_FFFF)
        torch.default_generator.manual_seed(s)
        return self.dataset[index]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        if torch.utils.data.get_worker_info() is not None:
            return [self._load(k) for k in keys]
        saved = random.getstate(), np.random.get_state(), torch.default_generator.get_state()
        try:
            return [self._load(k) for k in keys]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.default_generator.set_state(saved[2])

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]


def resumable_loader(
    dataset: Any, batch_size: int = 1, *, seed: int = 0, shuffle: bool = True, distributed: bool = False,
    seed_samples: bool = False, **kwargs: Any,
) -> DataLoader[Any]:
    """A ``DataLoader`` over ``dataset`` with a :class:`ResumableSampler` and its own generator.

    ``distributed=True`` shards the data over the ranks of the current process group
    (:func:`fsm_trainer.dist.init_dist` first); ``batch_size`` is then per rank, as mmcv's
    ``samples_per_gpu``. ``seed_samples=True`` loads every sample with the global RNGs seeded
    from ``(seed, epoch, index)`` (:class:`SampleSeeded`): random augmentation then resumes
    exactly mid-epoch, with any number of workers. Extra keyword arguments (``num_workers``, ``drop_last``,
    ``collate_fn``, ...) go to the DataLoader; ``sampler``, ``shuffle`` and ``generator`` are
    set here.

    >>> loader = resumable_loader(list(range(10)), batch_size=4, seed=0, shuffle=False)
    >>> [b.tolist() for b in loader]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    for key in ("sampler", "batch_sampler", "generator", "shuffle"):
        if key in kwargs:
            msg = f"resumable_loader sets {key!r} itself; remove it from the arguments"
            raise ArgumentTypeError(msg)
    rank, world = 0, 1
    if distributed:
        from fsm_trainer.dist import get_dist_info, is_dist

        if not is_dist():
            msg = "resumable_loader(distributed=True) needs a process group: call fsm_trainer.dist.init_dist() first"
            raise ProcessGroupError(msg)
        rank, world = get_dist_info()
    g = torch.Generator()
    sampler = ResumableSampler(dataset, seed=seed, shuffle=shuffle, loader_generator=g, num_replicas=world, rank=rank,
                               with_epoch=seed_samples)
    data = SampleSeeded(dataset, seed) if seed_samples else dataset
    return DataLoader(data, batch_size=batch_size, sampler=sampler, generator=g, **kwargs)
