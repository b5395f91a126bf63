"""From a :class:`~fsm_trainer.config.schema.TrainConfig` to the arguments of :func:`fsm_trainer.run`:
datasets, loaders, model, optimizer, hooks and the transition table (:func:`build`), after the
checks of :mod:`fsm_trainer.config.validate`; the hooks in the order of
:mod:`fsm_trainer.config.hookspec`. The names of those two modules are also importable from here.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from fsm_trainer.config import values
from fsm_trainer.config.hookspec import HookSpec, eval_hook_kwargs, hook_specs
from fsm_trainer.config.loader import ConfigError
from fsm_trainer.config.schema import TrainConfig
from fsm_trainer.config.validate import (
    build_optimizers,
    check_call,
    check_config,
    constructing,
    is_optimizer_dict,
    run_device,
    scaled_lr,
    validate,
    without_effect,
    wrapper_kwargs,
)
from fsm_trainer.config.values import blame
from fsm_trainer.errors import ArgumentTypeError
from fsm_trainer.hook import Hook
from fsm_trainer.registry import (
    DATASETS,
    LOSSES,
    MODELS,
)


def set_random_seed(seed: int, *, deterministic: bool = False) -> None:
    """Seed python, NumPy and torch; ``deterministic`` makes torch refuse nondeterministic kernels."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def with_priority(made: Any, priority: int | None) -> Any:
    """``made`` (a Hook, list of Hooks or factory) with every hook at ``priority`` (``None``: unchanged)."""
    if priority is None:
        return made
    if isinstance(made, Hook):
        return attrs.evolve(made, priority=priority)
    if isinstance(made, (list, tuple)):
        return [with_priority(m, priority) for m in made]
    if callable(made):

        def factory(ctx: Any) -> Any:
            return with_priority(made(ctx), priority)

        return factory
    msg = f"a hook builder returned {made!r}, not a Hook, a list of Hooks or a factory"
    raise ArgumentTypeError(msg)


@attrs.define
class Built:
    """Everything :func:`fsm_trainer.run` needs for a config; ``run_kwargs()`` are its arguments."""

    cfg: TrainConfig
    table: Any
    model: Any
    optimizer: Any
    datasets: dict[str, Any]
    data_loaders: list[Any]
    hooks: list[Any]
    specs: list[HookSpec]
    work_dir: Path | None
    seed: int
    train_step: Any = None
    val_step: Any = None
    meta: dict[str, Any] = attrs.field(factory=dict)
    loss_fn: Any = None
    device: Any = "auto"
    compile: Any = None

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fsm_trainer.run` (add ``resume=``, ``logger=`` as needed)."""
        kw: dict[str, Any] = {
            "data_loaders": self.data_loaders, "model": self.model, "optimizer": self.optimizer,
            "hooks": self.hooks, "work_dir": self.work_dir, "meta": self.meta, "device": self.device,
        }
        if self.compile not in (None, False):
            kw["compile"] = self.compile
        if self.train_step is not None:
            kw["train_step"], kw["val_step"] = self.train_step, self.val_step
        elif self.loss_fn is not None:
            kw["loss_fn"] = self.loss_fn
        return kw


def build_loader(dataset: Any, cfg: TrainConfig, split: str, seed: int, *, distributed: bool = False) -> Any:
    """mmcv-style DataLoader for ``split``: ``samples_per_gpu`` per batch; train shuffles by ``seed``.

    The train loader has a :class:`~fsm_trainer.sampler.ResumableSampler`, so a resumed run
    continues the same data order mid-epoch. ``distributed``: every loader is sharded over the
    ranks of the process group (``samples_per_gpu`` per rank; val in dataset order, padded).
    """
    from torch.utils.data import DataLoader

    from fsm_trainer.device import loader_kwargs
    from fsm_trainer.sampler import resumable_loader

    data = cfg.data
    device = run_device(cfg, distributed=distributed)
    # pin_memory when batches go to a GPU, unless the config says otherwise.
    over = {**(loader_kwargs(device) if device is not None else {}), **getattr(data, f"{split}_dataloader")}
    bs = over.pop("samples_per_gpu", data.samples_per_gpu)
    nw = over.pop("workers_per_gpu", data.workers_per_gpu)
    shuffle = over.pop("shuffle", split == "train")
    persistent = over.pop("persistent_workers", data.persistent_workers) and nw > 0
    if split == "train" or distributed or over.get("seed_samples"):
        return resumable_loader(dataset, bs, seed=seed, shuffle=shuffle, num_workers=nw,
                                persistent_workers=persistent, distributed=distributed, **over)
    over.pop("seed_samples", None)
    return DataLoader(dataset, batch_size=bs, shuffle=shuffle, num_workers=nw, persistent_workers=persistent, **over)


def build_datasets(cfg: TrainConfig, seed: int, *, distributed: bool = False) -> tuple[dict[str, Any], list[Any]]:
    """``({"train": ds, "val": ds?}, one loader per workflow entry)``.

    Raises:
        ConfigError: a dataset cannot be built with its arguments (naming ``data.<split>``), or a
            loader of the workflow has no batch.
    """
    with constructing("data.train", cfg.data.train):
        datasets = {"train": DATASETS.build(cfg.data.train, "data.train")}
    if cfg.data.val is not None and (cfg.evaluation is not None or any(m == "val" for m, _ in cfg.workflow)):
        with constructing("data.val", cfg.data.val):
            datasets["val"] = DATASETS.build(cfg.data.val, "data.val")
    loaders = {}
    for split, ds in datasets.items():
        over = getattr(cfg.data, f"{split}_dataloader")
        with constructing(f"data.{split}_dataloader", {"type": "DataLoader", **over}):
            loaders[split] = build_loader(ds, cfg, split, seed, distributed=distributed)
    for mode, _ in cfg.workflow:
        n = _length(loaders[mode])
        if n == 0:
            over = getattr(cfg.data, f"{mode}_dataloader")
            bs = over.get("samples_per_gpu", cfg.data.samples_per_gpu)
            msg = (f"data.{mode}: the {mode} loader has no batch ({_length(datasets[mode])} samples, "
                   f"samples_per_gpu={bs}, drop_last={over.get('drop_last', False)})")
            raise ConfigError(msg)
    return datasets, [loaders[mode] for mode, _ in cfg.workflow]


def _length(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def build_table(cfg: TrainConfig) -> Any:
    """The transition table of ``cfg.workflow`` and ``cfg.runner``."""
    from fsm_trainer.transitions import compile_workflow

    r = cfg.runner
    if r.by == "epoch":
        return compile_workflow(list(cfg.workflow), max_epochs=r.max_epochs)
    return compile_workflow(list(cfg.workflow), max_iters=r.max_iters)


def build(cfg: TrainConfig, *, work_dir: str | Path | None = None, seed: int | None = None,
          build_data: bool = True, meta: Mapping[str, Any] | None = None, distributed: bool = False) -> Built:
    """Validate ``cfg`` and build its model, optimizer, loaders, table and hooks.

    Args:
        cfg: a structured config.
        work_dir: overrides ``cfg.work_dir``.
        seed: overrides ``cfg.seed``; seeds python/NumPy/torch before the model is built and
            is the train loader's shuffle seed (``0`` when neither is given: no global seeding).
        build_data: ``False`` skips datasets and loaders (``data_loaders`` is empty).
        meta: extra run metadata (``exp_name``...).
        distributed: shard the loaders over the ranks of the current process group (see
            :func:`build_loader`), wrap the model in DistributedDataParallel and make the
            train step go through it (``train_step`` in ``run_kwargs()``).

    Raises:
        ConfigError: :func:`validate` found problems.
    """
    check_config(cfg)
    from fsm_trainer import device as D

    # Before seeding, so that deterministic=True still turns cudnn's benchmark mode off, as mmcv.
    D.apply_backend_flags(cudnn_benchmark=cfg.cudnn_benchmark or None, allow_tf32=cfg.allow_tf32,
                          matmul_precision=cfg.matmul_precision)
    seed = cfg.seed if seed is None else seed
    if seed is not None:
        set_random_seed(seed, deterministic=cfg.deterministic)
    elif cfg.deterministic:
        set_random_seed(0, deterministic=True)
    with constructing("model", cfg.model):
        model = MODELS.build(cfg.model, "model")
    loss_fn = None
    if cfg.loss is not None:
        with constructing("loss", cfg.loss):
            loss_fn = LOSSES.build(cfg.loss, "loss")
    if loss_fn is None and not (hasattr(model, "train_step") and hasattr(model, "val_step")):
        msg = (f"model.type: the model built ({type(model).__name__}) has no train_step/val_step, so the config "
               "needs a loss for it: add loss=dict(type='CrossEntropyLoss') (any torch.nn loss, or 'pkg.module:Name')")
        raise ConfigError(msg)
    opt_cfg = dict(cfg.optimizer)
    world_size = 1
    if distributed:
        from fsm_trainer.dist import get_dist_info

        world_size = get_dist_info()[1]
    lr = scaled_lr(cfg, world_size)
    if lr is not None:
        logging.getLogger("fsm_trainer").info(
            "auto_scale_lr: optimizer.lr %g -> %g (%d ranks x samples_per_gpu %d, base_batch_size %d)",
            opt_cfg["lr"], lr, world_size, cfg.data.samples_per_gpu, cfg.auto_scale_lr["base_batch_size"])  # type: ignore[index]
        opt_cfg["lr"] = lr
    optimizer = build_optimizers(model, opt_cfg)
    datasets, loaders = build_datasets(cfg, seed or 0, distributed=distributed) if build_data else ({}, [])
    if build_data and "val" in datasets and cfg.evaluation is not None:
        found = values.dataset_metric_errors(cfg.evaluation.get("metric"), datasets["val"])
        if found and callable(getattr(datasets["val"], "evaluate", None)):
            raise ConfigError(found)
    table = build_table(cfg)
    specs = hook_specs(cfg)
    if build_data:
        _check_schedules(specs, table, loaders)
    hooks, amp = [], None
    for s in specs:
        kwargs = dict(s.kwargs)
        if "dataloader" in s.needs:
            kwargs["dataloader"] = (build_loader(datasets["val"], cfg, "val", seed or 0, distributed=distributed)
                                    if build_data else None)
        with constructing(s.path, {"type": s.type, **s.kwargs}):
            made = s.builder(**kwargs)
        amp = getattr(made, "amp", amp)
        hooks.append(with_priority(made, s.priority))
    train_step = val_step = None
    if distributed:  # wrapped here so that AMP's steps go through DDP too
        from fsm_trainer.dist import prepare
        from fsm_trainer.step import make_steps

        prepared = prepare(model, optimizer, loaders, list(cfg.workflow) if loaders else [],
                           **wrapper_kwargs(cfg, model), find_unused_parameters=cfg.find_unused_parameters)
        optimizer = prepared.optimizer
        train_step, val_step = (amp.steps if amp is not None else make_steps)(
            model, optimizer, by=table.by, parallel=prepared.parallel, loss_fn=loss_fn)
    elif amp is not None:
        train_step, val_step = amp.steps(model, optimizer, by=table.by, loss_fn=loss_fn)
    wd = work_dir if work_dir is not None else cfg.work_dir
    return Built(cfg, table, model, optimizer, datasets, loaders, hooks, specs,
                 Path(wd) if wd is not None else None, seed or 0, train_step, val_step,
                 {"seed": seed, **(meta or {})}, loss_fn, run_device(cfg, distributed=distributed), cfg.compile)


def _check_schedules(specs: Sequence[HookSpec], table: Any, loaders: Sequence[Any]) -> None:
    """What the LR/momentum hooks check when the run starts (the run's length), checked now."""
    from fsm_trainer.schedules import ScheduleConfigError, build_lr_schedule, build_momentum_schedule

    epoch_len = None
    if table.by == "epoch":
        first = next((i for i, (mode, _) in enumerate(table.workflow) if mode == "train"), None)
        epoch_len = _length(loaders[first]) if first is not None and first < len(loaders) else None
    max_iters = table.max_iters if table.by == "iter" else (
        table.max_epochs * epoch_len if epoch_len is not None else None)
    errors = []
    for s in specs:
        if s.path not in ("lr_config", "momentum_config") or s.custom:
            continue
        kw = {k: v for k, v in s.kwargs.items() if k not in ("name", "priority")}
        try:
            schedule = (build_lr_schedule if s.path == "lr_config" else build_momentum_schedule)(**kw)
            schedule.check_run(table.by, max_epochs=table.max_epochs, max_iters=max_iters, epoch_len=epoch_len)
        except ScheduleConfigError as exc:
            text = str(exc).removeprefix(f"{s.path}: ")
            errors.append(blame(text, s.path, kw))
    if errors:
        raise ConfigError(errors)


__all__ = [
    "Built", "HookSpec", "build", "build_datasets", "build_loader", "build_optimizers", "build_table", "check_call",
    "check_config", "constructing", "eval_hook_kwargs", "hook_specs", "is_optimizer_dict", "scaled_lr",
    "set_random_seed", "validate", "with_priority", "without_effect", "wrapper_kwargs",
]
