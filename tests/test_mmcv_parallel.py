"""``fsm_trainer.mmcv.parallel`` batches, unwraps and wraps as mmcv 1.7.2's ``mmcv.parallel``.

Expected values marked "mmcv 1.7.2" were produced by running the same batches through
mmcv 1.7.2's ``collate`` and ``scatter_kwargs`` (target ``[-1]``) and are written here as literals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from _torchrun import free_port
from torch import nn
from torch.utils.data import DataLoader

from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.parallel import (
    MODULE_WRAPPERS,
    DataContainer,
    DeviceMismatchError,
    MMDataParallel,
    MMDistributedDataParallel,
    NotATensorError,
    ParallelError,
    collate,
    is_module_wrapper,
    scatter,
    scatter_kwargs,
)


def full(*shape: int, v: float = 1.0) -> torch.Tensor:
    return torch.full(shape, v)


def detection_batch() -> list[dict[str, Any]]:
    """Four samples as an mmdet pipeline makes them: images of different sizes, boxes, metadata, a label."""
    batch = [{"img": DataContainer(full(3, 4, 5, v=i + 1), stack=True, padding_value=-1),
              "meta": DataContainer({"id": i}, cpu_only=True),
              "gt": DataContainer(full(i + 1, 4)),
              "label": i} for i in range(4)]
    batch[1]["img"] = DataContainer(full(3, 6, 2, v=2), stack=True, padding_value=-1)
    batch[3]["img"] = DataContainer(full(3, 2, 7, v=4), stack=True, padding_value=9)
    return batch


# --------------------------------------------------------------------------- DataContainer


def test_data_container_properties_as_mmcv() -> None:
    dc = DataContainer(torch.zeros(2, 3), stack=True, padding_value=4, pad_dims=1)
    assert (dc.stack, dc.padding_value, dc.cpu_only, dc.pad_dims) == (True, 4, False, 1)
    # mmcv 1.7.2: repr, datatype, size, dim, len
    assert repr(DataContainer(torch.zeros(2))) == "DataContainer(tensor([0., 0.]))"
    assert dc.datatype == "torch.FloatTensor" and DataContainer([1, 2]).datatype is list
    assert dc.size() == torch.Size([2, 3]) and dc.size(1) == 3 and dc.dim() == 2 and len(DataContainer([1, 2, 3])) == 3
    with pytest.raises(AttributeError, match="DataContainer has no attribute size for type <class 'list'>"):
        DataContainer([1]).size()  # mmcv 1.7.2's message
    with pytest.raises(NotATensorError, match="dim"):
        DataContainer({"a": 1}).dim()
    with pytest.raises(ParallelError, match="pad_dims=4"):
        DataContainer(torch.zeros(1), pad_dims=4)


# --------------------------------------------------------------------------- collate


def test_collate_detection_batch_as_mmcv() -> None:
    out = collate(detection_batch(), samples_per_gpu=2)
    assert sorted(out) == ["gt", "img", "label", "meta"]
    img = out["img"]
    # mmcv 1.7.2: one padded stack per device, the collated container's flags
    assert (img.stack, img.cpu_only, img.padding_value, img.pad_dims) == (True, False, -1, 2)
    assert [tuple(x.shape) for x in img.data] == [(2, 3, 6, 5), (2, 3, 4, 7)]
    assert [x.sum().item() for x in img.data] == [48, 702]
    assert img.data[0][1, 0].tolist() == [[2, 2, -1, -1, -1]] * 6
    assert img.data[1][1, 0].tolist() == [[4] * 7] * 2 + [[9] * 7] * 2  # each sample's own padding value
    assert out["meta"].cpu_only and not out["meta"].stack
    assert out["meta"].data == [[{"id": 0}, {"id": 1}], [{"id": 2}, {"id": 3}]]
    assert not out["gt"].stack and not out["gt"].cpu_only
    assert [[tuple(g.shape) for g in c] for c in out["gt"].data] == [[(1, 4), (2, 4)], [(3, 4), (4, 4)]]
    assert torch.equal(out["label"], torch.tensor([0, 1, 2, 3]))


def test_collate_pad_dims_as_mmcv() -> None:
    o = collate([DataContainer(full(2, 3), stack=True, pad_dims=None)] * 2, 2)
    assert [tuple(x.shape) for x in o.data] == [(2, 2, 3)]  # mmcv 1.7.2
    o = collate([DataContainer(full(2, 3), stack=True, pad_dims=1),
                 DataContainer(full(2, 5, v=2), stack=True, pad_dims=1, padding_value=7)], 2)
    # mmcv 1.7.2: the padding of the first sample is its own padding value (0)
    assert [x.tolist() for x in o.data] == [[[[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0]],
                                             [[2.0, 2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0, 2.0]]]]
    o = collate([DataContainer(full(1, 2, 2, 2), stack=True, pad_dims=3),
                 DataContainer(full(1, 1, 3, 1), stack=True, pad_dims=3)], 2)
    assert [tuple(x.shape) for x in o.data] == [(2, 1, 2, 3, 2)] and o.data[0].sum().item() == 11.0  # mmcv 1.7.2
    o = collate([DataContainer(full(3, 2, 2), stack=True)] * 3, 2)
    assert [tuple(x.shape) for x in o.data] == [(2, 3, 2, 2), (1, 3, 2, 2)]  # mmcv 1.7.2: the last chunk is short


def test_collate_plain_values_as_mmcv() -> None:
    a, b = collate([(torch.tensor(1), 2.0), (torch.tensor(3), 4.0)])
    assert torch.equal(a, torch.tensor([1, 3])) and torch.equal(b, torch.tensor([2.0, 4.0], dtype=torch.float64))
    d = collate([{"x": 1.5, "y": torch.zeros(2)}, {"x": 2.5, "y": torch.ones(2)}])
    assert torch.equal(d["x"], torch.tensor([1.5, 2.5], dtype=torch.float64)) and d["y"].shape == (2, 2)
    assert collate([DataContainer([1, 2]), DataContainer([3])], samples_per_gpu=1).data == [[[1, 2]], [[3]]]
    # mmcv 1.7.2 recurses without end on strings; they collate as default_collate does
    assert collate([{"f": "a.jpg"}, {"f": "b.jpg"}]) == {"f": ["a.jpg", "b.jpg"]}


def test_collate_errors() -> None:
    with pytest.raises(ParallelError, match=r"\(3, 2, 2\) and \(4, 2, 2\) differ outside the last pad_dims=2"):
        collate([DataContainer(full(3, 2, 2), stack=True), DataContainer(full(4, 2, 2), stack=True)], 2)
    with pytest.raises(ParallelError, match="2 dimensions cannot be padded in its last pad_dims=2"):
        collate([DataContainer(full(2, 2), stack=True)] * 2, 2)
    with pytest.raises(ParallelError, match=r"batch\['img'\]: a stacked DataContainer must hold a tensor"):
        collate([{"img": DataContainer([1], stack=True)}])
    with pytest.raises(ParallelError, match="no samples"):
        collate([])
    with pytest.raises(ParallelError, match="samples_per_gpu=0"):
        collate([1], samples_per_gpu=0)
    with pytest.raises(ParallelError, match=r"different lengths \[1, 2\]"):
        collate([(1,), (1, 2)])
    with pytest.raises(ParallelError, match="shapes"):
        collate([DataContainer(full(2), stack=True, pad_dims=None), DataContainer(full(3), stack=True, pad_dims=None)], 2)
    assert issubclass(ParallelError, FsmTrainerError) and issubclass(ParallelError, ValueError)


# --------------------------------------------------------------------------- scatter


def test_scatter_kwargs_on_cpu_as_mmcv() -> None:
    batch = collate(detection_batch(), samples_per_gpu=4)
    inputs, kwargs = scatter_kwargs((), batch, [-1])
    # mmcv 1.7.2: ((),) and one dict of unwrapped fields
    assert inputs == ((),) and len(kwargs) == 1 and sorted(kwargs[0]) == ["gt", "img", "label", "meta"]
    k = kwargs[0]
    assert isinstance(k["img"], torch.Tensor) and tuple(k["img"].shape) == (4, 3, 6, 7)
    assert k["meta"] == [{"id": 0}, {"id": 1}, {"id": 2}, {"id": 3}]
    assert [tuple(g.shape) for g in k["gt"]] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    inputs, kwargs = scatter_kwargs((batch,), {}, [-1])
    assert len(inputs) == 1 and isinstance(inputs[0], tuple) and isinstance(inputs[0][0], dict)
    assert kwargs == ({},)  # mmcv 1.7.2
    assert scatter((1, "a", None), [-1]) == [(1, "a", None)] and scatter([], [-1]) == [[]] and scatter({}, [-1]) == [{}]


def test_scatter_refuses_several_devices_and_chunks() -> None:
    with pytest.raises(ParallelError, match=r"target_gpus=\[0, 1\]"):
        scatter(torch.zeros(2), [0, 1])
    with pytest.raises(ParallelError, match="collated for 2 devices"):  # mmcv 1.7.2 keeps the first chunk only
        scatter_kwargs((), collate(detection_batch(), samples_per_gpu=2), [-1])


class StepModel(nn.Module):
    """An mmcv-style model: ``train_step`` calls the model itself, as mmdet's detectors do."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)
        self.seen: list[tuple[type, type]] = []

    def forward(self, img: torch.Tensor, meta: list[dict[str, int]]) -> torch.Tensor:
        self.seen.append((type(img), type(meta)))
        return self.lin(img).pow(2).mean()

    def train_step(self, data: dict[str, Any], optimizer: Any = None) -> dict[str, Any]:
        loss = self(**data)
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(data["meta"])}

    def val_step(self, data: dict[str, Any], optimizer: Any = None) -> dict[str, Any]:
        return self.train_step(data, optimizer)


def samples(n: int = 8, seed: int = 0) -> list[dict[str, DataContainer]]:
    g = torch.Generator().manual_seed(seed)
    return [{"img": DataContainer(torch.randn(3, generator=g), stack=True, pad_dims=None),
             "meta": DataContainer({"i": i}, cpu_only=True)} for i in range(n)]


# --------------------------------------------------------------------------- MMDataParallel


def test_mm_data_parallel_on_cpu_unwraps_the_batch() -> None:
    torch.manual_seed(0)
    model = StepModel()
    dp = MMDataParallel(model, device_ids=[-1])
    assert dp.module is model and dp.device_ids == [] and is_module_wrapper(dp)
    batch = collate(samples(4), samples_per_gpu=4)
    out = dp.train_step(batch, None)
    plain = model.train_step({"img": batch["img"].data[0], "meta": batch["meta"].data[0]})
    assert torch.equal(out["loss"], plain["loss"]) and out["num_samples"] == 4
    assert dp.val_step(batch)["num_samples"] == 4
    assert torch.equal(dp(**batch), plain["loss"])  # forward unwraps too
    assert model.seen == [(torch.Tensor, list)] * 4
    if not torch.cuda.is_available():  # device_ids ignored without GPUs, as DataParallel
        assert MMDataParallel(StepModel(), device_ids=[0]).device_ids == []
        assert MMDataParallel(StepModel()).device_ids == []


def test_module_wrappers_registry() -> None:
    class MyWrapper(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    lin = nn.Linear(1, 1)
    assert not is_module_wrapper(lin) and not is_module_wrapper(MyWrapper(lin))
    assert is_module_wrapper(nn.DataParallel(lin))
    MODULE_WRAPPERS.register_module(module=MyWrapper)
    try:
        assert is_module_wrapper(MyWrapper(lin))
    finally:
        MODULE_WRAPPERS.backend._items.pop("MyWrapper")
    assert {"DataParallel", "DistributedDataParallel", "MMDataParallel", "MMDistributedDataParallel"} <= set(
        MODULE_WRAPPERS.module_dict)


@pytest.mark.gpu
def test_mm_data_parallel_on_one_gpu_moves_all_but_cpu_only() -> None:
    model = StepModel()
    dp = MMDataParallel(model, device_ids=[0])
    assert next(model.parameters()).device == torch.device("cuda", 0)
    batch = collate(samples(4), samples_per_gpu=4)
    (args,), _ = dp.scatter((batch,), {}, [0])
    assert args[0]["img"].device == torch.device("cuda", 0) and args[0]["meta"] == [{"i": i} for i in range(4)]
    out = dp.train_step(batch, None)
    assert out["loss"].device == torch.device("cuda", 0)
    model.cpu()
    with pytest.raises(DeviceMismatchError, match="cuda:0"):
        dp.train_step(batch, None)


# --------------------------------------------------------------------------- the mmcv runner with a wrapper


def _loader(collate_fn: Any) -> DataLoader[Any]:
    return DataLoader(samples(8), batch_size=4, collate_fn=collate_fn)  # type: ignore[arg-type]


def _runner(model: nn.Module, wrapped: Any, work_dir: Path) -> Any:
    from fsm_trainer.mmcv import EpochBasedRunner, Hook

    class SeeModel(Hook):
        def before_train_iter(self, runner: Any) -> None:
            seen.append(runner.model)

    seen: list[Any] = []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    runner = EpochBasedRunner(wrapped, optimizer=opt, work_dir=str(work_dir), logger=logging.getLogger("fsm_test"),
                              max_epochs=2)
    runner.register_training_hooks(lr_config=None, optimizer_config={"grad_clip": None},
                                   checkpoint_config={"interval": 1})
    runner.register_hook(SeeModel())
    runner.seen = seen
    return runner


def _train(model: nn.Module, wrapped: Any, loader: DataLoader[Any], work_dir: Path) -> list[Any]:
    runner = _runner(model, wrapped, work_dir)
    runner.run([loader], [("train", 1)])
    return runner.seen  # type: ignore[no-any-return]


def _unwrapped(batch: list[Any]) -> Any:
    return scatter_kwargs((), collate(batch, samples_per_gpu=4), [-1])[1][0]


def test_runner_trains_a_wrapped_model_as_the_bare_one(tmp_path: Path) -> None:
    """``EpochBasedRunner(MMDataParallel(model))`` on DataContainer batches ends with the weights of the bare run."""
    torch.manual_seed(0)
    bare = StepModel()
    wrapped_model = StepModel()
    wrapped_model.load_state_dict(bare.state_dict())
    _train(bare, bare, _loader(_unwrapped), tmp_path / "bare")
    wrapper = MMDataParallel(wrapped_model, device_ids=[-1])
    seen = _train(wrapped_model, wrapper, _loader(partial(collate, samples_per_gpu=4)), tmp_path / "wrapped")
    assert len(seen) == 4 and all(m is wrapper for m in seen)  # hooks see the wrapper as runner.model, as in mmcv
    assert torch.equal(bare.lin.weight, wrapped_model.lin.weight) and torch.equal(bare.lin.bias, wrapped_model.lin.bias)
    assert not torch.equal(bare.lin.weight, StepModel().lin.weight)


def test_runner_checkpoint_of_a_wrapped_model_holds_the_inner_keys(tmp_path: Path) -> None:
    from fsm_trainer.checkpoint import load_checkpoint

    model = StepModel()
    _train(model, MMDataParallel(model, device_ids=[-1]), _loader(partial(collate, samples_per_gpu=4)), tmp_path)
    assert sorted(load_checkpoint(tmp_path / "epoch_2").model) == ["lin.bias", "lin.weight"]
    saved = load_checkpoint(tmp_path / "epoch_1").model
    other = StepModel()
    runner = _runner(other, MMDataParallel(other, device_ids=[-1]), tmp_path / "resumed")
    runner.resume(tmp_path / "epoch_1")
    assert runner.epoch == 1 and torch.equal(other.lin.weight, saved["lin.weight"])


# --------------------------------------------------------------------------- MMDistributedDataParallel


@pytest.fixture
def gloo_world_of_one() -> Iterator[None]:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


class WithUnused(StepModel):
    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(2, 2)


def test_mm_distributed_data_parallel_steps_go_through_ddp(gloo_world_of_one: None) -> None:
    torch.manual_seed(0)
    model = WithUnused()
    reference = WithUnused()
    reference.load_state_dict(model.state_dict())
    ddp = MMDistributedDataParallel(model)
    assert ddp.module is model and is_module_wrapper(ddp)
    batch = collate(samples(4), samples_per_gpu=4)

    out = ddp.train_step(batch, None)
    out["loss"].backward()
    ref = reference.train_step({"img": batch["img"].data[0], "meta": batch["meta"].data[0]})
    ref["loss"].backward()
    assert torch.equal(out["loss"], ref["loss"]) and out["num_samples"] == 4
    assert model.lin.weight.grad is not None and torch.equal(model.lin.weight.grad, reference.lin.weight.grad)
    assert model.seen == [(torch.Tensor, list)]  # the step's own self(...) ran the plain forward, once

    # DDP prepared a reduction for this step; the unused parameter never got its gradient, which
    # DDP reports at the next step: proof that train_step went through its forward.
    with pytest.raises(RuntimeError, match="Expected to have finished reduction in the prior iteration"):
        ddp.train_step(batch, None)


def test_mm_distributed_data_parallel_val_step_and_forward(gloo_world_of_one: None) -> None:
    torch.manual_seed(0)
    model = WithUnused()
    ddp = MMDistributedDataParallel(model, find_unused_parameters=True)
    batch = collate(samples(4), samples_per_gpu=4)
    plain = model.train_step({"img": batch["img"].data[0], "meta": batch["meta"].data[0]})["loss"]
    for _ in range(2):  # unused parameters are allowed now: consecutive steps work
        out = ddp.train_step(batch, None)
        out["loss"].backward()
    with torch.no_grad():
        assert torch.equal(ddp.val_step(batch)["loss"], plain)
    assert torch.equal(ddp(**batch), plain)  # forward unwraps DataContainer too
