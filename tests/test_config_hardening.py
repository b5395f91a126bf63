"""Generated malformed variants of ``configs/digits_mlp.py``: every one exits 2, names its key, writes nothing.

The generator below makes several hundred variants across every section of the config (the
optimizer and its hook, schedules, runner and workflow, data and loaders, model and loss,
checkpoint, loggers, custom hooks, evaluation, runtime keys), through ``--cfg-options``, Python
and YAML child configs inheriting the example through a chain of ``_base_`` files, and whole
files (encodings, syntax, ``_base_`` problems). Each runs ``fsm-trainer train`` in-process and
must exit 2 with the key path (or the file) in the message, without a traceback, and leave the
work dir without files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from fsm_trainer.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "digits_mlp.py"
FAST = "fast.py"
"""Every variant inherits this small run of the example: an accepted variant would train for a second."""
FAST_TEXT = (f"_base_ = {str(CONFIG)!r}\n"
             "runner = dict(max_epochs=1)\ndata = dict(samples_per_gpu=512)\nlog_config = dict(interval=1)\n")


@attrs.frozen
class Case:
    """One malformed variant: ``kind`` is ``opt`` (``--cfg-options``), ``py``/``yaml`` (a child config's
    body), ``files`` (``{name: content}``, the config is the first) or ``path`` (a bad config path)."""

    id: str
    kind: str
    data: Any
    expect: str


def opt(key: str, *values: str, expect: str | None = None) -> list[Case]:
    return [Case(f"opt:{key}={v}", "opt", [f"{key}={v}"], expect or key) for v in values]


def py(section: str, key: str, *values: str, expect: str | None = None) -> list[Case]:
    return [Case(f"py:{section}.{key}={v}", "py", f"{section} = dict({key}={v})\n", expect or f"{section}.{key}")
            for v in values]


def top(key: str, *values: str, expect: str | None = None) -> list[Case]:
    return [Case(f"py:{key}={v}", "py", f"{key} = {v}\n", expect or key) for v in values]


def yaml(section: str, key: str, *values: str, expect: str | None = None) -> list[Case]:
    return [Case(f"yaml:{section}.{key}={v}", "yaml", f"{section}:\n  {key}: {v}\n", expect or f"{section}.{key}")
            for v in values]


NAN, INF = "float('nan')", "float('inf')"


def optimizer_cases() -> Iterator[Case]:
    yield from opt("optimizer.lr", "nan", "inf", "-inf", "-0.1", "0", "fast", "true", "None", "[0.1]")
    yield from py("optimizer", "lr", NAN, INF, "-1e-3", "0.0", "'0.1'", "(0.1,)")
    yield from yaml("optimizer", "lr", ".nan", ".inf", "-0.5", "0", "fast", "[0.1]")
    yield from opt("optimizer.momentum", "nan", "inf", "-0.5", "x", "true", "[1]")
    yield from py("optimizer", "momentum", NAN, "-0.9", "'high'")
    yield from opt("optimizer.weight_decay", "nan", "inf", "-1e-4", "x", "[0]")
    yield from py("optimizer", "weight_decay", NAN, INF, "-0.5")
    yield from opt("optimizer.dampening", "nan", "-1")
    yield from opt("optimizer.nesterov", "yes", "2")
    yield from opt("optimizer.type", "SDG", "3", "torch.optim:Nope", "nopkg_zz_missing:X", "None")
    yield from opt("optimizer.lrr", "0.1")
    yield from opt("optimizer.constructor", "Nope")
    yield Case("py:adam.betas", "py", "optimizer = dict(_delete_=True, type='Adam', lr=1e-3, betas=(0.9, 1.5))\n",
               "optimizer.betas")
    yield Case("py:adam.betas.nan", "py",
               f"optimizer = dict(_delete_=True, type='Adam', lr=1e-3, betas=({NAN}, 0.9))\n",
               "optimizer.betas")
    yield Case("py:adam.eps", "py", "optimizer = dict(_delete_=True, type='Adam', lr=1e-3, eps=-1e-8)\n",
               "optimizer.eps")
    yield Case("py:adamw.amsgrad", "py", "optimizer = dict(_delete_=True, type='AdamW', lr=1e-3, amsgrad='x')\n",
               "optimizer.amsgrad")
    yield Case("py:no.type", "py", "optimizer = dict(_delete_=True, lr=0.1)\n", "optimizer.type")
    pw = "optimizer.paramwise_cfg"
    for body in ("3", "'x'", "dict(nope=1)", "dict(bias_lr_mult='x')", "dict(bias_lr_mult=-1.0)",
                 f"dict(bias_lr_mult={NAN})", f"dict(norm_decay_mult={INF})", "dict(custom_keys=3)",
                 "dict(custom_keys=dict(net=dict(lr_mul=2)))", "dict(custom_keys=dict(net=dict(lr_mult=-2)))",
                 "dict(custom_keys=dict(net=3))", "dict(bypass_duplicate='x')", "dict(dwconv_decay_mult=[1])"):
        yield Case(f"py:{pw}={body}", "py", f"optimizer = dict(paramwise_cfg={body})\n", pw)
    yield from opt("optimizer.paramwise_cfg.bias_lr_mult", "x", "-2", "nan")
    yield from top("optimizer", "3", "'SGD'", "None", "[]", expect="optimizer")


def optimizer_config_cases() -> Iterator[Case]:
    gc = "optimizer_config.grad_clip"
    yield from opt(f"{gc}.max_norm", "-1", "0", "nan", "inf", "x", "true", "None", expect=f"{gc}.max_norm")
    yield from py("optimizer_config", "grad_clip", "dict(max_norm=-1.0)", f"dict(max_norm={NAN})",
                  f"dict(max_norm={INF})", "dict()", "dict(norm_type=2)", "3", "'x'", "[35]", expect=gc)
    yield from py("optimizer_config", "grad_clip", "dict(max_norm=1, norm_type='x')",
                  "dict(max_norm=1, norm_type=-2)", f"dict(max_norm=1, norm_type={NAN})",
                  "dict(max_norm=1, foo=2)", "dict(max_norm=1, error_if_nonfinite='x')", expect=gc)
    yield from opt("optimizer_config.cumulative_iters", "0", "-1", "x", "1.5", "true")
    yield from opt("optimizer_config.type", "Nope", "3")
    yield from opt("optimizer_config.detect_anomalous_params", "x")
    yield from opt("optimizer_config.nope", "1")
    yield Case("py:fp16.loss_scale", "py", "fp16 = dict(loss_scale='x')\n", "loss_scale")
    yield Case("py:fp16.loss_scale.neg", "py", "fp16 = dict(loss_scale=-1.0)\n", "loss_scale")
    yield Case("py:fp16.nope", "py", "fp16 = dict(nope=1)\n", "nope")
    yield from top("fp16", "3", "'x'")
    yield from top("optimizer_config", "3", "'x'", "[1]")


def schedule_cases() -> Iterator[Case]:
    yield from opt("lr_config.gamma", "nan", "-0.1", "0", "inf", "x", "true")
    yield from py("lr_config", "gamma", NAN, "-1.0", "0.0", INF)
    yield from yaml("lr_config", "gamma", ".nan", "-0.5", "0.0", ".inf")
    yield from opt("lr_config.step", "[-1]", "x", "[1,x]", "0", "[0]", "nan", "[14,nan]")
    yield from opt("lr_config.policy", "nope", "3", "None")
    yield from opt("lr_config.warmup", "cubic", "3")
    yield from opt("lr_config.warmup_iters", "-1", "x", "1.5")
    yield from opt("lr_config.warmup_ratio", "0", "2", "nan", "-1", "inf")
    yield from opt("lr_config.min_lr", "nan", "-1", "inf")
    yield from opt("lr_config.by_epoch", "x", "2")
    yield from opt("lr_config.stpe", "[1]")
    yield Case("py:cosine.min", "py", "lr_config = dict(_delete_=True, policy='CosineAnnealing')\n", "lr_config")
    yield Case("py:cosine.nan", "py", f"lr_config = dict(_delete_=True, policy='CosineAnnealing', min_lr={NAN})\n",
               "lr_config.min_lr")
    yield Case("py:cosine.ratio", "py",
               "lr_config = dict(_delete_=True, policy='CosineAnnealing', min_lr_ratio=-0.5)\n",
               "lr_config.min_lr_ratio")
    yield Case("py:cyclic.epoch", "py", "lr_config = dict(_delete_=True, policy='cyclic', by_epoch=True)\n",
               "lr_config.by_epoch")
    yield Case("py:onecycle.maxlr", "py", "lr_config = dict(_delete_=True, policy='OneCycle', max_lr=-1.0)\n",
               "lr_config.max_lr")
    yield Case("py:onecycle.nan", "py", f"lr_config = dict(_delete_=True, policy='OneCycle', max_lr={NAN})\n",
               "lr_config.max_lr")
    yield Case("py:exp.gamma", "py", "lr_config = dict(_delete_=True, policy='exp', gamma=-0.9)\n", "lr_config.gamma")
    yield Case("py:poly.power", "py", f"lr_config = dict(_delete_=True, policy='poly', power={NAN})\n",
               "lr_config.power")
    yield Case("py:restart.periods", "py", "runner = dict(max_epochs=3)\n"
               "lr_config = dict(_delete_=True, policy='CosineRestart', periods=[1], min_lr=0.0)\n", "lr_config")
    yield from top("lr_config", "3", "'step'", "[1]")
    m = "momentum_config"
    yield Case("py:momentum.policy", "py", f"{m} = dict(policy='nope')\n", f"{m}.policy")
    yield Case("py:momentum.nan", "py", f"{m} = dict(policy='CosineAnnealing', min_momentum_ratio={NAN})\n",
               f"{m}.min_momentum_ratio")
    yield Case("py:momentum.neg", "py", f"{m} = dict(policy='CosineAnnealing', min_momentum=-1.0)\n",
               f"{m}.min_momentum")
    yield Case("py:momentum.gamma", "py", f"{m} = dict(policy='step', step=[5], gamma=-0.5)\n", f"{m}.gamma")
    yield Case("py:momentum.gamma.nan", "py", f"{m} = dict(policy='step', step=[5], gamma={NAN})\n", f"{m}.gamma")
    yield Case("py:momentum.unknown", "py", f"{m} = dict(policy='step', step=[5], gama=0.5)\n", f"{m}.gama")
    yield from top(m, "3")


def runner_cases() -> Iterator[Case]:
    yield from opt("runner.max_epochs", "-1", "x", "nan", "1.5", "None", "true", "[1]")
    yield from yaml("runner", "max_epochs", "-3", "x", ".nan", "1.5", "null")
    yield from opt("runner.type", "X", "3", "EpochRunner")
    yield from opt("runner.max_iters", "10", expect="runner.max_iters")
    yield from opt("runner.nope", "1")
    yield Case("opt:runner=3", "opt", ["runner=3"], "runner")
    yield Case("py:iter.no.max", "py", "runner = dict(_delete_=True, type='IterBasedRunner')\n", "runner.max_iters")
    yield Case("py:iter.both", "py", "runner = dict(type='IterBasedRunner', max_iters=10)\n", "runner.max_epochs")
    for body in ("[('test', 1)]", "[('train', 0)]", "'train'", "[('train', 1, 2)]", "[]", "[('val', 1)]",
                 "[('train', -1)]", "3", "[('train', 'x')]", "[['train']]", "[('train', 1.5)]"):
        yield Case(f"py:workflow={body}", "py", f"workflow = {body}\n", "workflow")
    yield Case("opt:workflow.0.1=x", "opt", ["workflow.0.1=x"], "workflow")
    yield Case("opt:workflow.5.0=train", "opt", ["workflow.5.0=train"], "workflow.5")
    yield Case("opt:workflow.x=1", "opt", ["workflow.x=1"], "workflow.x")


def data_cases() -> Iterator[Case]:
    yield from opt("data.samples_per_gpu", "0", "-1", str(10**30), "x", "1.5", "true", "nan", str(2**20 + 1))
    yield from py("data", "samples_per_gpu", "10**30", NAN, "0", "'32'")
    yield from yaml("data", "samples_per_gpu", "0", "1e30", "x")
    yield from opt("data.workers_per_gpu", "-1", "x", "100000", "1.5")
    yield from opt("data.persistent_workers", "x", "2")
    yield from opt("data.nope", "1")
    yield from opt("data.train.split", "test", "3", "None", expect="data.train")
    yield from opt("data.val.split", "test", "x", expect="data.val")
    yield from opt("data.train.seed", "x", "1.5")
    yield from opt("data.train.val_fraction", "0", "1.5", "nan", "-0.2", "x", expect="data.train.val_fraction")
    yield from opt("data.train.type", "Nope", "3", "torch.nn:Nope", "nopkg_zz_missing:Data")
    yield from opt("data.train.nope", "1")
    yield Case("opt:data.train=3", "opt", ["data.train=3"], "data.train")
    yield Case("opt:data=None", "opt", ["data=None"], "data")
    yield Case("py:data.val=None", "py", "data = dict(val=None)\n", "data.val")
    yield Case("py:data.train.notype", "py", "data = dict(train=dict(_delete_=True, split='train'))\n",
               "data.train.type")
    yield Case("py:data.train.drop_last", "py",
               "data = dict(train_dataloader=dict(samples_per_gpu=4096, drop_last=True))\n", "data.train")
    for split in ("train", "val", "test"):
        dl = f"data.{split}_dataloader"
        yield from opt(f"{dl}.samples_per_gpu", "0", "x", str(10**30), "true", "-1", "nan")
        yield from opt(f"{dl}.workers_per_gpu", "-1", "x", "99999")
        yield from opt(f"{dl}.shuffle", "no", "1")
        yield from opt(f"{dl}.seed_samples", "no", "1", "None")
        yield from opt(f"{dl}.drop_last", "no", "0")
        yield from opt(f"{dl}.pin_memory", "x")
        yield from opt(f"{dl}.persistent_workers", "x")
        yield from opt(f"{dl}.nope", "1")
        yield Case(f"py:{dl}=3", "py", f"data = dict({split}_dataloader=3)\n", dl)
    yield from yaml("data", "train_dataloader", "{seed_samples: 'no'}", "{shuffle: 1}", "{samples_per_gpu: 0}",
                    expect="data.train_dataloader")


def model_cases() -> Iterator[Case]:
    yield from opt("model.type", "Nope", "torch.nn:Nope", "nopkg_zz_missing:X", "3", "DigitNet")
    yield from opt("model.hidden", "x", "1.5", "nan", "true")
    yield from opt("model.hidden", "-1", expect="hidden=-1")
    yield from opt("model.nope", "1")
    yield Case("opt:model=3", "opt", ["model=3"], "model")
    yield Case("py:model.notype", "py", "model = dict(_delete_=True, hidden=8)\n", "model.type")
    yield Case("py:plain.noloss", "py",
               "model = dict(_delete_=True, type='torch.nn:Linear', in_features=64, out_features=10)\n", "model.type")
    yield Case("py:plain.badarg", "py",
               "model = dict(_delete_=True, type='torch.nn:Linear', in_features=64, out_feature=10)\n"
               "loss = dict(type='CrossEntropyLoss')\n", "model.out_feature")
    yield Case("py:loss.unused", "py", "loss = dict(type='CrossEntropyLoss')\n", "loss")
    plain = "model = dict(_delete_=True, type='torch.nn:Linear', in_features=64, out_features=10)\n"
    for body, expect in (("loss = dict(type='Nope')", "loss.type"), ("loss = 3", "loss"),
                         ("loss = dict(type='CrossEntropyLoss', nope=1)", "loss.nope"),
                         ("loss = dict(reduction='mean')", "loss.type"),
                         ("loss_fn = dict(type='torch.nn:Nope')", "loss.type"),
                         ("loss = dict(type='CrossEntropyLoss')\nloss_fn = dict(type='MSELoss')", "loss_fn"),
                         ("loss = dict(type='CrossEntropyLoss', reduction='everything')", "loss.reduction"),
                         (f"loss = dict(type='CrossEntropyLoss', label_smoothing={NAN})", "loss.label_smoothing")):
        yield Case(f"py:{body}", "py", plain + body + "\n", expect)


def checkpoint_cases() -> Iterator[Case]:
    c = "checkpoint_config"
    yield from opt(f"{c}.interval", "x", "nan", "1.5", "[1]")
    yield from opt(f"{c}.max_keep_ckpts", "x", "1.5")
    yield from opt(f"{c}.by_epoch", "x")
    yield from opt(f"{c}.out_dir", "3")
    yield from opt(f"{c}.save_optimizer", "x")
    yield from opt(f"{c}.nope", "1")
    yield from opt(f"{c}.type", "Nope")
    yield from top(c, "3", "'x'")
    iter_based = "runner = dict(_delete_=True, type='IterBasedRunner', max_iters=6)\nlog_config = dict(interval=2)\n"
    for key in (c, "evaluation"):
        yield Case(f"py:{key}.by_epoch.iter", "py", iter_based + f"{key} = dict(by_epoch=True)\n", f"{key}.by_epoch")
    yield Case("py:log.by_epoch.iter", "py",
               iter_based + "log_config = dict(hooks=[dict(type='TextLoggerHook', by_epoch=True)])\n",
               "log_config.hooks[0].by_epoch")
    yield Case("py:lr.by_epoch.iter", "py", iter_based + "lr_config = dict(by_epoch=True)\n", "lr_config")


def logger_cases() -> Iterator[Case]:
    yield from opt("log_config.interval", "0", "-1", "x", "nan")
    yield from opt("log_config.hooks", "3", "x", expect="log_config.hooks")
    yield from opt("log_config.hooks.x", "5", expect="log_config.hooks")
    yield from opt("log_config.hooks.3.interval", "1", expect="log_config.hooks.3")
    yield from opt("log_config.hooks.-1.interval", "1", expect="log_config.hooks")
    yield from opt("log_config.hooks.0.interval", "x", "0", expect="log_config.hooks[0].interval")
    yield from opt("log_config.hooks.0.nope", "1", expect="log_config.hooks[0].nope")
    yield from opt("log_config.hooks.0.type", "Nope", "3", expect="log_config.hooks[0].type")
    yield from opt("log_config.nope", "1")
    for body in ("[dict(type='Nope')]", "[3]", "[dict()]", "[dict(type='TextLoggerHook', interval='x')]",
                 "[dict(type='TextLoggerHook', ignore_last='x')]", "[dict(type='ProgressBarHook', interval=0)]"):
        yield Case(f"py:log_config.hooks={body}", "py", f"log_config = dict(hooks={body})\n", "log_config.hooks")
    yield from top("log_config", "3", "'x'")


def custom_hook_cases() -> Iterator[Case]:
    ch = "custom_hooks"
    for body, expect in (
        ("[dict(type='Nope')]", f"{ch}[0].type"), (f"[dict(type='EMAHook', momentum={NAN})]", f"{ch}[0].momentum"),
        ("[dict(type='EMAHook', momentum=-1.0)]", f"{ch}[0].momentum"),
        ("[dict(type='EMAHook', momentum=2.0)]", f"{ch}[0].momentum"),
        ("[dict(type='EMAHook', momentum='x')]", f"{ch}[0].momentum"),
        ("[dict(type='EMAHook', interval=0)]", f"{ch}[0]"),
        ("[dict(type='EMAHook', priority='X')]", f"{ch}[0].priority"),
        ("[dict(type='EMAHook', priority=200)]", f"{ch}[0].priority"),
        ("[dict(type='EMAHook', priority=-1)]", f"{ch}[0].priority"),
        ("[dict(type='EarlyStoppingHook')]", f"{ch}[0].monitor"),
        ("[dict(type='EarlyStoppingHook', monitor='accuracy', patience=-1)]", f"{ch}[0]"),
        ("[dict(type='NanGuardHook', action='x')]", f"{ch}[0].action"),
        ("[dict(type='EmptyCacheHook', nope=1)]", f"{ch}[0].nope"),
        ("[3]", ch), ("[dict()]", f"{ch}[0].type"), ("3", ch), ("dict(type='EMAHook')", ch),
        ("[dict(type='TraceHook')]", f"{ch}[0].path"),
    ):
        yield Case(f"py:{ch}={body}", "py", f"{ch} = {body}\n", expect)


def evaluation_cases() -> Iterator[Case]:
    e = "evaluation"
    yield from opt(f"{e}.metric", "f1", "3", "[accuracy,nope]", "[]", "top0", "None")
    yield from opt(f"{e}.save_best", "nope", "3", "loss", "top5_accuracy", "true")
    yield from opt(f"{e}.rule", "bigger", "3")
    yield from opt(f"{e}.interval", "0", "-1", "x", "nan", "true", "1.5")
    yield from opt(f"{e}.start", "-1", "x")
    yield from opt(f"{e}.by_epoch", "x")
    yield from opt(f"{e}.priority", "X", "500")
    yield from opt(f"{e}.nope", "1")
    yield from py(e, "metric", "'f1'", "['accuracy', 'f1']", "[3]", "''")
    yield from py(e, "save_best", "'f1'", "['accuracy']")
    yield Case("py:eval.f1.rule", "py", "evaluation = dict(metric='cross_entropy', save_best='accuracy')\n",
               f"{e}.save_best")
    yield from yaml(e, "metric", "f1", "[accuracy, nope]")
    yield from yaml(e, "interval", "0", "x")
    yield from top(e, "3", "'accuracy'")


def runtime_cases() -> Iterator[Case]:
    yield from opt("seed", "x", "1.5", str(2**70), "[1]")
    yield from opt("log_level", "LOUD", "3", "info")
    yield from opt("work_dir", "3")
    yield from opt("resume_from", "3", "missing_dir/epoch_3")
    yield from opt("load_from", "3", "missing_weights.pth")
    yield from opt("auto_resume", "yes", "2")
    yield from opt("deterministic", "yes")
    yield from top("custom_imports", "dict(imports=['nopkg_zz_missing'])", "dict(imports=3)", "dict(nope=1)", "'x'",
                   "dict(imports=['os'], allow_failed_imports='x')")
    yield from opt("dist_params", "3", "x")
    yield from opt("dist_params.nope", "1")
    yield from opt("dist_params.backend", "3")
    yield from opt("dist_params.timeout_s", "-1", "nan", "x")
    yield from top("model_wrapper_cfg", "dict(type='X')", "3",
                   "dict(type='MMFullyShardedDataParallel', shard_modules=3)", "dict(nope=1)")
    yield from opt("gpu_ids", "x", "[x]")
    yield from opt("opencv_num_threads", "x")
    yield from opt("mp_start_method", "3")
    yield from opt("cudnn_benchmark", "x")
    yield from opt("auto_scale_lr", "3")
    for typo, key in (("lr_confg", "lr_config"), ("optimzer", "optimizer"), ("evalution", "evaluation"),
                      ("chekpoint_config", "checkpoint_config"), ("wrokflow", "workflow"),
                      ("custom_hook", "custom_hooks")):
        yield Case(f"py:{typo}", "py", f"{typo} = dict()\n", f"{typo}: unknown key; did you mean {key!r}?")
        yield Case(f"opt:{typo}", "opt", [f"{typo}=1"], typo)


def options_cases() -> Iterator[Case]:
    for option, expect in (("nokey", "nokey"), ("=5", "=5"), ("a=[1,2", "a"), ("a=(1,2]]", "a"),
                           ("runner.max_epochs.x=1", "runner.max_epochs"), ("data.train.split.x=1", "data.train.split"),
                           ("workflow.0.5=3", "workflow.0.5"), ("optimizer.lr.x=1", "optimizer.lr"),
                           ("model.type=", "model.type"), ("log_config.hooks.0.x.y=1", "log_config.hooks"),
                           ("custom_hooks.0.type=EMAHook", "custom_hooks")):
        yield Case(f"opt:{option}", "opt", [option], expect)


def file_cases() -> Iterator[Case]:
    base = f"_base_ = {FAST!r}\n"
    latin = "# réglages\n".encode("latin-1")
    yield Case("file:latin1.py", "files", {"cfg.py": latin + base.encode()}, "cfg.py")
    yield Case("file:latin1.yaml", "files", {"cfg.yaml": f"_base_: {FAST}\n# ".encode() + "é".encode("latin-1")},
               "cfg.yaml")
    yield Case("file:latin1.base", "files", {"cfg.py": "_base_ = 'b.py'\n", "b.py": latin + base.encode()}, "b.py")
    yield Case("file:latin1.base.yaml", "files", {"cfg.yaml": "_base_: b.yaml\n",
                                                  "b.yaml": f"_base_: {FAST}\n# ".encode() + b"\xff\xfe"}, "b.yaml")
    yield Case("file:utf16.py", "files", {"cfg.py": base.encode("utf-16")}, "cfg.py")
    yield Case("file:latin1.json", "files", {"cfg.json": b'{"seed": "\xe9"}'}, "cfg.json")
    yield Case("file:syntax.py", "files", {"cfg.py": base + "model = dict(\n"}, "cfg.py")
    yield Case("file:raises.py", "files", {"cfg.py": base + "raise ValueError('no config today')\n"}, "cfg.py")
    yield Case("file:sysexit.py", "files", {"cfg.py": base + "import sys\nsys.exit(3)\n"}, "cfg.py")
    yield Case("file:systemexit.py", "files", {"cfg.py": base + "raise SystemExit\n"}, "cfg.py")
    yield Case("file:exit.py", "files", {"cfg.py": base + "exit('bye')\n"}, "cfg.py")
    yield Case("file:name.py", "files", {"cfg.py": base + "seed = undefined_name\n"}, "cfg.py")
    yield Case("file:base.raises", "files", {"cfg.py": "_base_ = 'b.py'\n", "b.py": base + "1 / 0\n"}, "b.py")
    yield Case("file:base.sysexit", "files", {"cfg.py": "_base_ = 'b.py'\n", "b.py": "raise SystemExit(0)\n"}, "b.py")
    yield Case("file:bad.yaml", "files", {"cfg.yaml": f"_base_: {FAST}\nrunner: [unclosed\n"}, "cfg.yaml")
    yield Case("file:bad.toml", "files", {"cfg.toml": f"_base_ = '{FAST}'\nrunner = \n"}, "cfg.toml")
    yield Case("file:bad.json", "files", {"cfg.json": '{"_base_": "fast.py", '}, "cfg.json")
    yield Case("file:list.json", "files", {"cfg.json": "[1, 2]"}, "cfg.json")
    yield Case("file:str.yaml", "files", {"cfg.yaml": "just a string\n"}, "cfg.yaml")
    yield Case("file:empty.py", "files", {"cfg.py": ""}, "model")
    yield Case("file:empty.yaml", "files", {"cfg.yaml": ""}, "model")
    yield Case("file:base.missing", "files", {"cfg.py": "_base_ = 'missing.py'\n"}, "missing.py")
    yield Case("file:base.cycle", "files", {"cfg.py": "_base_ = 'a.py'\n", "a.py": "_base_ = 'b.py'\n",
                                            "b.py": "_base_ = 'a.py'\n"}, "cycle")
    yield Case("file:base.int", "files", {"cfg.py": "_base_ = 3\n"}, "_base_")
    yield Case("file:base.list.int", "files", {"cfg.py": "_base_ = ['fast.py', 3]\n"}, "_base_")
    yield Case("file:base.dup", "files", {"cfg.py": "_base_ = ['fast.py', 'b.py']\n", "b.py": "seed = 1\n"}, "seed")
    yield Case("file:base.txt", "files", {"cfg.py": "_base_ = 'b.txt'\n", "b.txt": "seed = 1\n"}, "b.txt")
    yield Case("file:base.dir", "files", {"cfg.py": "_base_ = 'sub'\n", "sub/x.py": "seed = 1\n"}, "sub")
    yield Case("file:base.var", "files", {"cfg.py": base + "seed = {{ _base_.nope }}\n"}, "_base_.nope")
    yield Case("file:var.nobase", "files", {"cfg.py": "seed = {{ _base_.seed }}\n"}, "_base_")
    yield Case("file:base.merge", "files", {"cfg.py": base + "seed = dict(a=1)\n"}, "seed")
    yield Case("file:suffix.ini", "files", {"cfg.ini": "[x]\n"}, "cfg.ini")
    yield Case("file:nonstr.yaml", "files", {"cfg.yaml": f"_base_: {FAST}\n1: 2\n"}, "1")
    yield Case("file:yaml.nested.nonstr", "files", {"cfg.yaml": f"_base_: {FAST}\nmodel:\n  1: 2\n"}, "model.1")
    yield Case("path:missing", "path", "missing.py", "missing.py")
    yield Case("path:dir", "path", "adir", "adir")


SECTIONS = (optimizer_cases, optimizer_config_cases, schedule_cases, runner_cases, data_cases, model_cases,
            checkpoint_cases, logger_cases, custom_hook_cases, evaluation_cases, runtime_cases, options_cases,
            file_cases)


def generate() -> list[Case]:
    """Every case of every section, ids unique."""
    cases = [c for section in SECTIONS for c in section()]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    return cases


def materialize(case: Case, d: Path) -> str:
    """Write the case's files into ``d`` and return the config path to train."""
    d.mkdir(parents=True)
    (d / FAST).write_text(FAST_TEXT, encoding="utf-8")
    if case.kind == "opt":
        return str(d / FAST)
    if case.kind == "py":
        (d / "cfg.py").write_text(f"_base_ = {FAST!r}\n" + case.data, encoding="utf-8")
        return str(d / "cfg.py")
    if case.kind == "yaml":
        (d / "cfg.yaml").write_text(f"_base_: {FAST}\n" + case.data, encoding="utf-8")
        return str(d / "cfg.yaml")
    if case.kind == "path":
        (d / "adir").mkdir()
        return str(d / case.data)
    first = None
    for name, content in case.data.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        first = first or p
    assert first is not None
    return str(first)


CASES = generate()


# ``main`` configures the ``fsm_trainer`` logger for the console (and more): give the state back.
pytestmark = pytest.mark.usefixtures("cli_state")


def test_generator_covers_every_section():
    """Hundreds of variants, from every section, in every form (options, Python and YAML children, files)."""
    assert len(CASES) >= 400
    kinds = {c.kind for c in CASES}
    assert kinds == {"opt", "py", "yaml", "files", "path"}
    for section in SECTIONS:
        assert sum(1 for _ in section()) >= 5, section.__name__


def test_every_malformed_variant_exits_2_naming_its_key(tmp_path, capsys, monkeypatch):
    """Each variant: exit 2, its key (or file) named, no traceback, and no file in the work dir."""
    monkeypatch.chdir(tmp_path)
    failures = []
    for i, case in enumerate(CASES):
        d = tmp_path / f"c{i}"
        config = materialize(case, d)
        wd = d / "wd"
        args = ["train", config, "--work-dir", str(wd), "--progress", "off"]
        if case.kind == "opt":
            args += ["--cfg-options", *case.data]
        code = main(args)
        out, err = capsys.readouterr()
        written = sorted(str(p.relative_to(wd)) for p in wd.rglob("*") if p.is_file()) if wd.exists() else []
        problems = []
        if code != 2:
            problems.append(f"exit {code}")
        if case.expect not in err:
            problems.append(f"{case.expect!r} not named")
        if "Traceback" in err or "Traceback" in out:
            problems.append("traceback")
        if written:
            problems.append(f"wrote {written[:3]}")
        if problems:
            failures.append(f"{case.id}: {'; '.join(problems)}\n    {err.strip()[:300]}")
    assert not failures, f"{len(failures)} of {len(CASES)} variants:\n" + "\n".join(failures)
