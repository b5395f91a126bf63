"""Real OpenMMLab training configs (mmcls 0.25, mmdet 2.28, mmseg 0.30, mmpose 0.29, mmocr 0.6) run as they are.

``tests/configs_real/<repo>/`` holds real config files with the ``_base_`` files they need,
verbatim, each top file ending with a block that swaps the model and the datasets for the
digits example (its header names the file it mirrors). Each one is validated, built and
planned; a few are trained for a short run with ``fsm-trainer train`` and ``--cfg-options``.
Downstream hooks come from ``tests/configs_real/downstream_hooks.py`` (user code registering
them), the datasets' mmcv evaluation protocol from ``tests/configs_real/digits_support.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.cli import main
from fsm_trainer.config import ConfigError, from_dict, load, load_config
from fsm_trainer.config.build import build, without_effect
from fsm_trainer.config.plan import make_plan
from fsm_trainer.hooks.eval import eval_hook, eval_state, single_gpu_test

ROOT = Path(__file__).resolve().parent / "configs_real"
SWAP_MARK = "# ---- swapped for the digits example"


def real_configs() -> list[Path]:
    return sorted(p for p in ROOT.glob("mm*/**/*.py") if SWAP_MARK in p.read_text(encoding="utf-8"))


def short(path: Path, epochs: int = 2, iters: int = 40) -> list[str]:
    """``--cfg-options`` that shorten the run of ``path``."""
    raw = load_config(path)
    if "runner" not in raw:
        return [f"total_epochs={epochs}"] if "total_epochs" in raw else [f"total_iters={iters}"]
    if raw["runner"]["type"] == "IterBasedRunner":
        return [f"runner.max_iters={iters}"]
    return [f"runner.max_epochs={epochs}"] + ([f"total_epochs={epochs}"] if "total_epochs" in raw else [])


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


CONFIGS = real_configs()


def test_the_suite_covers_every_repository() -> None:
    repos = {p.relative_to(ROOT).parts[0] for p in CONFIGS}
    assert repos == {"mmcls", "mmdet", "mmseg", "mmpose", "mmocr"}
    assert len(CONFIGS) >= 30
    for p in CONFIGS:
        assert p.read_text(encoding="utf-8").startswith("# Mirrors open-mmlab/"), p


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_real_config_builds_and_plans(path: Path) -> None:
    cfg = load(path)
    built = build(cfg, work_dir=None)
    assert built.table.by in ("epoch", "iter")
    opts = short(path)
    cfg = load(path, opts)
    built = build(cfg)
    plan = make_plan(built.table, [len(x) for x in built.data_loaders], built.specs, cfg.optimizer)
    assert plan.rows
    if cfg.evaluation is not None:
        assert callable(getattr(built.datasets["val"], "evaluate", None))


@pytest.mark.usefixtures("cli_state")  # main() configures the logger (and more): given back
@pytest.mark.parametrize("name", ["mmcls/resnet/resnet18_8xb32_in1k.py",
                                  "mmdet/yolox/yolox_s_8x8_300e_coco.py"])
def test_show_and_plan_commands(name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = ROOT / name
    assert main(["show", str(path), "--cfg-options", *short(path)]) == 0
    out = capsys.readouterr().out
    assert "# hook order per point" in out
    assert main(["plan", str(path), "--cfg-options", *short(path)]) == 0
    assert "checkpoints written" in capsys.readouterr().out
    assert not (tmp_path / "work_dirs").exists()  # show and plan write nothing


TRAINED = {
    # mmcls: epoch-based, built-in runtime, dataset accuracy through evaluate()
    "mmcls/resnet/resnet18_8xb32_in1k.py": ["runner.max_epochs=1"],
    # mmcls fp16 (bfloat16 autocast on the CPU)
    "mmcls/fp16/resnet50_b32x8_fp16_dynamic_imagenet.py": ["runner.max_epochs=1"],
    # mmdet YOLOX: registered LR policy, custom hooks, EMA, dynamic_intervals
    "mmdet/yolox/yolox_s_8x8_300e_coco.py": ["runner.max_epochs=2", "evaluation.interval=1",
                                            "lr_config.num_last_epochs=1", "lr_config.warmup_iters=1"],
    # mmseg: iter-based, pre_eval, mIoU
    "mmseg/pspnet/pspnet_r50-d8_512x1024_40k_cityscapes.py": ["runner.max_iters=30", "evaluation.interval=15",
                                                             "checkpoint_config.interval=15"],
    # mmpose: total_epochs without runner, mAP with save_best='AP'
    "mmpose/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/res50_coco_256x192.py": [
        "total_epochs=2", "evaluation.interval=1"],
}


@pytest.mark.usefixtures("cli_state")  # main() configures the logger (and more): given back
@pytest.mark.slow
@pytest.mark.parametrize("name", list(TRAINED))
def test_short_training_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    work = tmp_path / "work"
    code = main(["train", str(ROOT / name), "--work-dir", str(work), "--progress", "off",
                 "--cfg-options", "data.samples_per_gpu=64", *TRAINED[name]])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "done: " in out.out
    logs = list(work.glob("*.log.json"))
    assert logs
    records = [json.loads(line) for line in logs[0].read_text(encoding="utf-8").splitlines()[1:]]
    if load(ROOT / name).evaluation is not None:
        assert any(r["mode"] == "val" for r in records)


@pytest.mark.usefixtures("cli_state")  # main() configures the logger (and more): given back
def test_without_effect_keys_are_listed_once_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    path = ROOT / "mmseg/pspnet/pspnet_r50-d8_512x1024_40k_cityscapes.py"
    cfg = load(path, ["runner.max_iters=4", "evaluation.interval=4", "checkpoint_config.interval=4",
                      "find_unused_parameters=True", "opencv_num_threads=1"])
    assert any(k.startswith("find_unused_parameters") for k in without_effect(cfg))
    code = main(["train", str(path), "--work-dir", str(tmp_path / "w"), "--progress", "off", "--cfg-options",
                 "runner.max_iters=4", "evaluation.interval=4", "checkpoint_config.interval=4",
                 "find_unused_parameters=True", "opencv_num_threads=1"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("accepted without effect:") == 1
    assert "opencv_num_threads=1" in out and "find_unused_parameters=True" in out


# --------------------------------------------------------------------------- config errors


def raw_of(name: str, *options: str) -> dict[str, Any]:
    return load_config(ROOT / name, list(options))


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    return info.value.errors


def test_unregistered_downstream_hook_names_it_and_where_to_register() -> None:
    raw = raw_of("mmdet/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py")
    raw["custom_hooks"] = [dict(type="RFSearchHook")]
    errs = errors_of(raw)
    assert any(e.startswith("custom_hooks[0].type: 'RFSearchHook' is not a registered hook") and
               "fsm_trainer.registry.HOOKS" in e and "custom_imports" in e for e in errs), errs


def test_lr_policy_is_checked_with_the_other_keys() -> None:
    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py")
    raw["lr_config"] = dict(policy="Stepp", step=[30], gama=0.1)
    errs = errors_of(raw)
    assert any(e.startswith("lr_config.policy: 'Stepp' is neither a built-in policy; did you mean 'Step'?")
               and "'SteppLrUpdaterHook'" in e for e in errs), errs
    raw["lr_config"] = dict(policy="Step", step=[30], gama=0.1)
    assert any(e.startswith("lr_config.gama: unknown key") for e in errors_of(raw))


def test_unknown_policy_without_registration() -> None:
    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py")
    raw["lr_config"] = dict(policy="CosineAnnealingCooldown", min_lr=1e-5, cool_down_time=10)
    errs = errors_of(raw)
    assert any("'CosineAnnealingCooldownLrUpdaterHook'" in e and "register" in e for e in errs), errs


@pytest.mark.usefixtures("cli_state")  # main() configures the logger (and more): given back
def test_metric_unknown_to_the_dataset_is_a_config_error(tmp_path: Path) -> None:
    path = ROOT / "mmdet/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py"
    with pytest.raises(ConfigError, match=r"evaluation.metric: 'segmm' is not a metric of data.val's "
                                          r"DigitsEvalDataset.evaluate; allowed: 'bbox'"):
        build(load(path, ["evaluation.metric=segmm"]), build_data=True)
    code = main(["plan", str(path), "--cfg-options", "evaluation.metric=segmm"])
    assert code == 2


def test_dataset_metric_without_evaluate_and_unknown_eval_keys() -> None:
    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py")
    raw["data"]["val"] = dict(type="DigitsDataset", split="val")
    raw["evaluation"] = dict(interval=1, metric="bbox", classwise=True)
    errs = errors_of(raw)
    assert any(e.startswith("evaluation.classwise: unknown key for EvalHook") and "has no evaluate()" in e
               for e in errs), errs
    assert any(e.startswith("evaluation.metric: 'bbox' is not a metric") for e in errs), errs


def test_evaluate_signature_checks_passed_keys() -> None:
    raw = raw_of("mmseg/pspnet/pspnet_r50-d8_512x1024_40k_cityscapes.py")
    raw["evaluation"]["efficient_tset"] = True
    assert from_dict(raw)  # DigitsEvalDataset.evaluate takes **eval_kwargs, as mmseg's


@pytest.mark.parametrize(("key", "value", "expect"), [
    ("sampler", dict(type="RepeatAugSampler"), "sampler.type: 'RepeatAugSampler' is not supported"),
    ("optimizer", dict(type="Lamb", lr=0.005), "optimizer.type: 'Lamb' is not a registered optimizer"),
    ("log_config", dict(interval=50, hooks=[dict(type="PaviLoggerHook")]),
     "log_config.hooks[0]: PaviLoggerHook (pavi) is not supported"),
    ("log_config", dict(interval=50, hooks=[dict(type="MMDetWandbHook")]),
     "log_config.hooks[0]: MMDetWandbHook (wandb) is not supported"),
    ("total_epochs", 7, "total_epochs: 7 differs from runner.max_epochs=100"),
    ("auto_scale_lr", dict(enable=True), "auto_scale_lr.base_batch_size: required with enable=True"),
])
def test_refused_keys(key: str, value: Any, expect: str) -> None:
    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py")
    raw[key] = value
    errs = errors_of(raw)
    assert any(e.startswith(expect) for e in errs), errs


def test_helper_names_close_to_known_keys() -> None:
    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py")
    raw["checkpoint_file"] = "https://download.openmmlab.com/x.pth"
    raw["custom_keys"] = {"backbone": dict(lr_mult=0.1)}
    cfg = from_dict(raw)
    assert set(cfg.variables) >= {"checkpoint_file", "custom_keys"}
    raw["lr_confg"] = dict(policy="step", step=[1])
    errs = errors_of(raw)
    assert any(e.startswith("lr_confg: unknown key; did you mean 'lr_config'? (1 edit away") for e in errs), errs
    del raw["lr_confg"]
    raw["optimizer_cfg"] = dict(grad_clip=None)
    errs = errors_of(raw)
    assert any(e.startswith("optimizer_cfg: unknown key; did you mean 'optimizer_config'? (a dict like") for e in errs)


def test_total_epochs_and_total_iters_make_the_runner() -> None:
    cfg = load(ROOT / "mmpose/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/res50_coco_256x192.py")
    assert (cfg.runner.type, cfg.runner.max_epochs) == ("EpochBasedRunner", 210)
    cfg = load(ROOT / "mmseg/cgnet/cgnet_512x1024_60k_cityscapes.py")
    assert (cfg.runner.type, cfg.runner.max_iters) == ("IterBasedRunner", 60000)


def test_empty_step_list_is_a_constant_lr() -> None:
    cfg = load(ROOT / "mmcls/resnet/resnet18_8xb32_in1k.py", ["lr_config.step=[]", "runner.max_epochs=3"])
    built = build(cfg)
    plan = make_plan(built.table, [len(x) for x in built.data_loaders], built.specs, cfg.optimizer)
    assert {r.lr for r in plan.rows} == {0.1}


def test_auto_scale_lr_scales_as_mmdet() -> None:
    name = "mmdet/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py"
    cfg = load(ROOT / name, ["auto_scale_lr.enable=True", "data.samples_per_gpu=4"])
    built = build(cfg, build_data=False)
    assert built.optimizer.param_groups[0]["lr"] == pytest.approx(0.02 * 4 / 16)
    cfg = load(ROOT / name)  # enable=False in mmdet's default_runtime
    assert build(cfg, build_data=False).optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


def test_optimizer_dict_and_constructor() -> None:
    from fsm_trainer.config.builtins import DefaultOptimizerConstructor
    from fsm_trainer.registry import MODELS, OPTIMIZER_CONSTRUCTORS

    class TwoPart(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generator, self.discriminator = torch.nn.Linear(64, 10), torch.nn.Linear(10, 1)

        def train_step(self, batch: Any, optimizer: Any = None) -> dict[str, Any]:
            loss = self.generator(batch[0]).sum()
            return {"loss": loss, "log_vars": {"loss": float(loss)}, "num_samples": len(batch[0])}

        val_step = train_step

    MODELS.register("TwoPart", force=True, obj=TwoPart)
    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py")
    raw["model"] = dict(type="TwoPart")
    raw["optimizer"] = dict(generator=dict(type="Adam", lr=1e-3), discriminator=dict(type="SGD", lr=0.1))
    raw["optimizer_config"] = None
    built = build(from_dict(raw), build_data=False)
    assert set(built.optimizer) == {"generator", "discriminator"}
    assert built.optimizer["discriminator"].param_groups[0]["params"][0] is built.model.discriminator.weight
    raw["optimizer"] = dict(genrator=dict(type="Adam", lr=1e-3))
    with pytest.raises(ConfigError, match=r"optimizer.genrator: the model \(TwoPart\) has no submodule 'genrator'"):
        build(from_dict(raw), build_data=False)

    calls = []

    class DecayConstructor(DefaultOptimizerConstructor):
        def __call__(self, model: torch.nn.Module) -> torch.optim.Optimizer:
            calls.append(dict(self.paramwise_cfg or {}))
            self.paramwise_cfg = None
            return super().__call__(model)

    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py")
    raw["optimizer"] = dict(type="AdamW", lr=1e-4, constructor="DecayConstructor",
                            paramwise_cfg=dict(num_layers=6, decay_rate=0.9))
    assert any("optimizer.constructor: 'DecayConstructor' is not a registered optimizer constructor" in e
               for e in errors_of(raw))
    OPTIMIZER_CONSTRUCTORS.register("DecayConstructor", force=True, obj=DecayConstructor)
    build(from_dict(raw), build_data=False)
    assert calls == [{"num_layers": 6, "decay_rate": 0.9}]


def test_wandb_logger_offline_or_named_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = raw_of("mmcls/resnet/resnet18_8xb32_in1k.py", "runner.max_epochs=1")
    raw["log_config"] = dict(interval=20, hooks=[dict(type="TextLoggerHook"),
                                                 dict(type="WandbLoggerHook", init_kwargs=dict(dir=str(tmp_path)))])
    from fsm_trainer.config.values import missing_package

    if missing_package("wandb"):
        errs = errors_of(raw)
        assert any("WandbLoggerHook needs the wandb package" in e and "fsm-trainer[wandb]" in e for e in errs)
        return
    monkeypatch.setenv("WANDB_MODE", "offline")
    built = build(from_dict(raw), work_dir=tmp_path / "w")
    run(TrainState(), built.table, **built.run_kwargs())
    assert list((tmp_path / "wandb").glob("offline-run-*"))


# --------------------------------------------------------------------------- the evaluation protocol


class DictModel(torch.nn.Module):
    """An mmcv-style model: ``model(return_loss=False, **data)`` returns one result per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(64, 10)
        self.calls: list[bool] = []

    def forward(self, img: torch.Tensor, return_loss: bool = True, **_: Any) -> Any:
        self.calls.append(return_loss)
        return list(self.net(img))


def digits_eval(split: str = "val", **kw: Any) -> Any:
    from tests.configs_real.digits_support import DigitsEvalDataset

    return DigitsEvalDataset(split, metrics=kw.pop("metrics", ("mIoU",)), **kw)


def test_single_gpu_test_dict_batches_and_pre_eval() -> None:
    from torch.utils.data import DataLoader

    ds = digits_eval()
    seen: list[list[int]] = []
    pre = ds.pre_eval
    ds.pre_eval = lambda preds, indices: (seen.append(list(indices)), pre(preds, indices))[1]  # type: ignore[method-assign]

    def collate(items: list[Any]) -> dict[str, Any]:
        return {"img": torch.stack([x for x, _ in items])}

    model = DictModel()
    loader = DataLoader(ds, batch_size=100, collate_fn=collate)
    results = single_gpu_test(model, loader, pre_eval=True)
    assert model.calls and not any(model.calls)
    assert [i for batch in seen for i in batch] == list(range(len(ds)))
    assert len(results) == len(ds) and all(isinstance(r, bool) for r in results)
    assert set(ds.evaluate(results, metric="mIoU")) == {"mIoU"}


def test_eval_hook_calls_dataset_evaluate_with_eval_kwargs(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    from fsm_trainer.examples.digits import DigitsNet
    from fsm_trainer.hooks import optimizer_hook

    train, val = digits_eval("train"), digits_eval("val", result_keys=("aAcc",))
    model = DigitsNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    table = compile_workflow([("train", 1)], max_epochs=4)
    hooks = [optimizer_hook(),
             eval_hook(DataLoader(val, batch_size=128), metric="mIoU", save_best="mIoU", pre_eval=True,
                       dynamic_intervals=[(2, 2)], eval_kwargs={"efficient_test": False, "imgfile_prefix": "x"})]
    final = run(TrainState(), table, model=model, optimizer=opt, data_loaders=[DataLoader(train, batch_size=64)],
                hooks=hooks, work_dir=tmp_path, logger=logging.getLogger("test"))
    # dynamic_intervals=[(2, 2)]: epochs 1 and 2 (interval 1 until 2 is done), then every 2 epochs: 4.
    assert [e["metric"] for e in val.evaluated] == [["mIoU"]] * 3
    assert val.evaluated[0]["imgfile_prefix"] == "x"
    st = eval_state(final)
    assert st["last"]["epoch"] == 4 and set(st["last"]["metrics"]) == {"mIoU", "aAcc"}
    assert st["rule"] == "greater" and st["best_ckpt"].startswith("best_mIoU_epoch_")


def test_rules_of_downstream_keys() -> None:
    from fsm_trainer.hooks.eval import infer_rule

    assert [infer_rule(k) for k in ("AP", "PCK", "PCKh", "AUC", "0_hmean-iou:hmean")] == ["greater"] * 5
    assert [infer_rule(k) for k in ("NME", "EPE", "MPJPE")] == ["less"] * 3
