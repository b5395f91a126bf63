"""The digits example's data: scikit-learn's own arrays, read without importing scikit-learn."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import pytest
import torch

from fsm_trainer.examples.digits import _digits_table, digits_arrays, load_digits_split


def test_digits_arrays_equal_sklearn_load_digits() -> None:
    from sklearn.datasets import load_digits

    ref = load_digits()
    data, target = digits_arrays()
    assert data.dtype == ref.data.dtype and target.dtype == ref.target.dtype
    assert np.array_equal(data, ref.data) and np.array_equal(target, ref.target)
    assert data.shape == (1797, 64)
    data[0, 0], target[0] = -1, -1  # the caller's own arrays: the next call is unchanged
    again, again_target = digits_arrays()
    assert np.array_equal(again, ref.data) and np.array_equal(again_target, ref.target)


def test_split_is_seeded_and_disjoint() -> None:
    train, val = load_digits_split(seed=3)
    again, _ = load_digits_split(seed=3)
    other, _ = load_digits_split(seed=4)
    assert len(train) + len(val) == 1797 and len(val) == 359
    assert torch.equal(train.tensors[0], again.tensors[0])
    assert not torch.equal(train.tensors[0], other.tensors[0])
    assert float(train.tensors[0].max()) == 1.0 and float(train.tensors[0].min()) == 0.0


def test_loading_does_not_import_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def guarded(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sklearn" or name.startswith("sklearn."):
            raise AssertionError(f"imported {name}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)
    _digits_table.cache_clear()  # read the file again, under the guard
    train, val = load_digits_split()
    assert len(train) + len(val) == 1797
