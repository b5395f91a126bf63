"""fsm_trainer.mmcv.misc: mmcv 1.7.2's LogBuffer, IterLoader, set_random_seed, get_host_info, get_time_str,
obj_from_dict.

The expected values are mmcv 1.7.2's, recorded as literals by running the same sequences with
``mmcv.runner`` (torch 2.13 and NumPy 2.4 in both environments).
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Sampler

from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.misc import (
    IterLoader,
    LogBuffer,
    MiscArgumentError,
    get_host_info,
    get_time_str,
    obj_from_dict,
    set_random_seed,
)

# --------------------------------------------------------------------------- LogBuffer

# mmcv 1.7.2's LogBuffer.output after each average() of the script in test_log_buffer_averages_equal_mmcv.
MMCV_OUTPUTS = [
    ("avg3", {"loss": 0.17619047619047618, "acc": 0.275, "extra": 1.78}),
    ("avg3", {"loss": 0.09393939393939395, "acc": 0.7714285714285715, "extra": 0.9000000000000001}),
    ("all", {"loss": 0.13334165834165831, "acc": 0.6, "extra": 1.06}),
    ("avg10", {"loss": 0.11729320062653395, "acc": 0.6592592592592594, "extra": 1.06}),
    ("avg20", {"loss": 0.13334165834165831, "acc": 0.6, "extra": 1.06}),
]


def test_log_buffer_averages_equal_mmcv() -> None:
    """Count-weighted averages of the last n entries per key (all for n=0, keys with shorter histories too)."""
    b = LogBuffer()
    outputs: list[tuple[str, dict[str, Any]]] = []
    for i in range(12):
        values = {"loss": 1.0 / (i + 3), "acc": 0.1 * i}
        if i % 3 == 0:
            values["extra"] = 2.5 - 0.3 * i
        b.update(values, count=(i % 4) + 1)
        if i % 5 == 4:
            b.average(3)
            outputs.append(("avg3", dict(b.output)))
    for label, n in (("all", 0), ("avg10", 10), ("avg20", 20)):
        b.average(n)
        assert b.ready
        outputs.append((label, dict(b.output)))
    assert [label for label, _ in outputs] == [label for label, _ in MMCV_OUTPUTS]
    for (label, ours), (_, theirs) in zip(outputs, MMCV_OUTPUTS, strict=True):
        assert ours.keys() == theirs.keys()
        if label == "avg3":
            assert ours == theirs  # 3 terms: the same sums
        else:  # up to 12 terms: NumPy's pairwise sum may round the last bit differently
            assert ours == {k: pytest.approx(v, rel=1e-15, abs=0) for k, v in theirs.items()}
    assert b.n_history == {"loss": [1, 2, 3, 4] * 3, "acc": [1, 2, 3, 4] * 3, "extra": [1, 4, 3, 2]}
    assert b.val_history["extra"] == [2.5, 2.5 - 0.3 * 3, 2.5 - 0.3 * 6, 2.5 - 0.3 * 9]
    b.clear_output()  # mmcv: forgets the output only
    assert (b.ready, b.output, len(b.val_history["loss"])) == (False, {}, 12)
    b.clear()
    assert (b.ready, b.val_history, b.n_history) == (False, {}, {})


def test_log_buffer_takes_tensors_and_refuses_a_non_dict() -> None:
    b = LogBuffer()
    b.update({"loss": torch.tensor(1.0)}, count=1)
    b.update({"loss": torch.tensor(4.0)}, count=3)
    b.average()
    assert b.output == {"loss": 3.25} and b.val_history == {"loss": [1.0, 4.0]}
    b.val_history = {"x": [2.0]}
    b.n_history = {"x": [1]}
    b.average()
    assert b.output["x"] == 2.0
    with pytest.raises(MiscArgumentError, match="vars must be a dict of values, got list") as info:
        b.update([("loss", 1.0)])  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError) and isinstance(info.value, FsmTrainerError)


# --------------------------------------------------------------------------- IterLoader


class RecordingSampler(Sampler[int]):
    """Indices shifted by the epoch set last; records the set_epoch calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.calls.append(epoch)
        self.epoch = epoch

    def __iter__(self) -> Any:
        return iter([(i + self.epoch) % 5 for i in range(5)])

    def __len__(self) -> int:
        return 5


def test_iter_loader_cycles_counts_epochs_and_sets_the_sampler_epoch_like_mmcv() -> None:
    sampler = RecordingSampler()
    loader = DataLoader(list(range(100, 105)), batch_size=2, sampler=sampler)
    it = IterLoader(loader)
    assert (it.epoch, it._epoch, len(it), it._dataloader) == (0, 0, 3, loader)
    got = []
    for _ in range(7):
        got.append((next(it).tolist(), it.epoch))
    # mmcv 1.7.2's batches and epochs, and its set_epoch calls (none before the first wrap):
    assert got == [([100, 101], 0), ([102, 103], 0), ([104], 0), ([101, 102], 1), ([103, 104], 1), ([100], 1),
                   ([102, 103], 2)]
    assert sampler.calls == [1, 2]
    assert it._epoch == 2


def test_iter_loader_mmcv_attributes_are_the_live_state() -> None:
    it = IterLoader([1, 2, 3], epoch=4)
    assert next(it) == 1 and it.epoch == 4
    it.iter_loader = iter([9])  # mmcv code replaces the iterator
    assert next(it) == 9
    assert next(it) == 1 and it.epoch == 5  # the replaced iterator ended: a new pass
    it._epoch = 7
    assert it.epoch == 7


# --------------------------------------------------------------------------- seeds, host, time


def draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(2).tolist()


@pytest.fixture
def _restore_rng(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    det, bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    algorithms = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(algorithms)
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(th)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = det, bench


@pytest.mark.usefixtures("_restore_rng")
def test_set_random_seed_gives_mmcv_draws_and_repeats() -> None:
    set_random_seed(42)
    first = draws()
    # mmcv 1.7.2's random.random(), np.random.rand(), torch.rand(2) after set_random_seed(42):
    assert first == (0.6394267984578837, 0.3745401188473625, [0.8822692632675171, 0.9150039553642273])
    assert os.environ["PYTHONHASHSEED"] == "42"
    draws()
    set_random_seed(42, use_rank_shift=True)  # rank 0 in a single process: the same seed
    assert draws() == first
    set_random_seed(43)
    assert draws() != first
    set_random_seed(np.int64(42))  # NumPy integers are seeds too
    assert draws() == first


@pytest.mark.usefixtures("_restore_rng")
def test_set_random_seed_deterministic_sets_cudnn_flags_only() -> None:
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    torch.use_deterministic_algorithms(False)
    set_random_seed(0)
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, True)
    set_random_seed(0, deterministic=True)
    assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (True, False)
    assert not torch.are_deterministic_algorithms_enabled()  # as mmcv: cuDNN's flags, nothing more
    with pytest.raises(MiscArgumentError, match=r"seed must be an int, got float 1\.5"):
        set_random_seed(1.5)  # type: ignore[arg-type]


def test_host_info_and_time_str(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass
    import socket

    assert get_host_info() == f"{getpass.getuser()}@{socket.gethostname()}"

    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found: 1234")

    monkeypatch.setattr(getpass, "getuser", no_user)
    with pytest.warns(UserWarning, match="uid not found"):
        assert get_host_info() == ""
    before = time.strftime("%Y%m%d_%H%M%S", time.localtime())
    stamp = get_time_str()
    assert re.fullmatch(r"\d{8}_\d{6}", stamp) and stamp >= before


# --------------------------------------------------------------------------- obj_from_dict


def test_obj_from_dict_parent_default_args_class_and_path() -> None:
    info = dict(type="Linear", in_features=2, out_features=5)
    layer = obj_from_dict(info, torch.nn, dict(out_features=3, bias=False))
    assert isinstance(layer, torch.nn.Linear) and layer.weight.shape == (5, 2) and layer.bias is None
    assert info == dict(type="Linear", in_features=2, out_features=5)  # not modified
    assert obj_from_dict(dict(type=dict, a=1)) == {"a": 1}
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = obj_from_dict(dict(type="torch.optim.SGD", lr=0.5), default_args=dict(params=params))
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.5
    assert isinstance(obj_from_dict(dict(type="torch.optim:Adam", params=params)), torch.optim.Adam)


@pytest.mark.parametrize(("args", "match"), [
    ((dict(a=1),), "info must be a dict with a 'type' key"),
    ((dict(type=3),), "type must be a name or a class, got int 3"),
    ((dict(type="Lnear"), torch.nn), "type 'Lnear' is not an attribute of torch.nn"),
    ((dict(type="Linear"),), "type 'Linear' needs a parent module"),
    ((dict(type="torch.nn.Lnear"),), "has no attribute 'Lnear'; did you mean 'Linear'"),
    ((dict(type="Linear"), torch.nn, [("bias", False)]), "default_args must be a dict or None, got list"),
])
def test_obj_from_dict_errors_name_the_argument(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(MiscArgumentError, match=match):
        obj_from_dict(*args)
