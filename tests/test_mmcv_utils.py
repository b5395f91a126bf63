"""``fsm_trainer.mmcv.utils`` behaves as mmcv 1.7.2's ``mmcv.utils`` for what training scripts use.

Expected values marked "mmcv 1.7.2" were produced by running the same input through mmcv
1.7.2 (``Config.fromfile`` on the files of :data:`FILES`, ``DictAction`` on the command
lines of :data:`DICT_ACTION_CASES`, ``digit_version``, ``is_seq_of``) and are written here as
literals.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fsm_trainer.config.loader import ConfigError
from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv import utils as mu
from fsm_trainer.mmcv.utils import (
    Config,
    ConfigDict,
    CustomImportError,
    DictAction,
    MmcvTypeError,
    MmcvValueError,
    collect_env,
    digit_version,
    get_git_hash,
    get_logger,
    is_list_of,
    is_seq_of,
    is_str,
    is_tuple_of,
    mkdir_or_exist,
    print_log,
)

# --------------------------------------------------------------------------- an OpenMMLab-style config tree

FILES = {
    "_base_/models/retinanet_r50_fpn.py": """\
model = dict(
    type='RetinaNet',
    backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch',
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, start_level=1,
              add_extra_convs='on_input', num_outs=5),
    bbox_head=dict(type='RetinaHead', num_classes=80, in_channels=256, stacked_convs=4, feat_channels=256,
                   loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                   loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5)))
""",
    "_base_/schedules/schedule_1x.py": """\
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', warmup='linear', warmup_iters=500, warmup_ratio=0.001, step=[8, 11])
runner = dict(type='EpochBasedRunner', max_epochs=12)
""",
    "_base_/default_runtime.json": """\
{"checkpoint_config": {"interval": 1},
 "log_config": {"interval": 50, "hooks": [{"type": "TextLoggerHook"}]},
 "dist_params": {"backend": "nccl"}, "log_level": "INFO", "load_from": null, "resume_from": null,
 "workflow": [["train", 1]]}
""",
    "_base_/datasets/coco.yaml": """\
dataset_type: CocoDataset
data_root: data/coco/
data:
  samples_per_gpu: 2
  workers_per_gpu: 2
  train:
    type: CocoDataset
    ann_file: data/coco/annotations/instances_train2017.json
    pipeline:
      - type: LoadImageFromFile
      - type: Resize
        img_scale: [1333, 800]
        keep_ratio: true
      - type: RandomFlip
        flip_ratio: 0.5
""",
    "retinanet_r18_fpn_1x_custom.py": """\
_base_ = [
    '_base_/models/retinanet_r50_fpn.py', '_base_/datasets/coco.yaml',
    '_base_/schedules/schedule_1x.py', '_base_/default_runtime.json',
]
model = dict(
    backbone=dict(depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18'),
                  norm_cfg=dict(_delete_=True, type='GN', num_groups=32)),
    neck=dict(in_channels=[64, 128, 256, 512]),
    bbox_head=dict(num_classes=3))
optimizer = dict(lr=0.01)
test_cfg = {{ _base_.model.test_cfg }}
work_dir = '{{ fileDirname }}/work_dirs/{{ fileBasenameNoExtension }}'
lr_config = dict(_delete_=True, policy='CosineAnnealing', min_lr_ratio=1e-3)
data = dict(samples_per_gpu=4, train=dict(pipeline=[dict(type='LoadImageFromFile')]))
custom_imports = dict(imports=['json'], allow_failed_imports=False)
""",
}
MAIN = "retinanet_r18_fpn_1x_custom.py"

# mmcv 1.7.2: Config.fromfile(MAIN)._cfg_dict.to_dict(), the tree's directory written as {root}.
MMCV_DICT = {'model': {'type': 'RetinaNet', 'backbone': {'type': 'ResNet', 'depth': 18, 'num_stages': 4, 'out_indices': (0, 1, 2, 3), 'frozen_stages': 1, 'norm_cfg': {'type': 'GN', 'num_groups': 32}, 'norm_eval': True, 'style': 'pytorch', 'init_cfg': {'type': 'Pretrained', 'checkpoint': 'torchvision://resnet18'}}, 'neck': {'type': 'FPN', 'in_channels': [64, 128, 256, 512], 'out_channels': 256, 'start_level': 1, 'add_extra_convs': 'on_input', 'num_outs': 5}, 'bbox_head': {'type': 'RetinaHead', 'num_classes': 3, 'in_channels': 256, 'stacked_convs': 4, 'feat_channels': 256, 'loss_cls': {'type': 'FocalLoss', 'use_sigmoid': True, 'gamma': 2.0, 'alpha': 0.25, 'loss_weight': 1.0}, 'loss_bbox': {'type': 'L1Loss', 'loss_weight': 1.0}}, 'test_cfg': {'nms_pre': 1000, 'min_bbox_size': 0, 'score_thr': 0.05, 'nms': {'type': 'nms', 'iou_threshold': 0.5}}}, 'dataset_type': 'CocoDataset', 'data_root': 'data/coco/', 'data': {'samples_per_gpu': 4, 'workers_per_gpu': 2, 'train': {'type': 'CocoDataset', 'ann_file': 'data/coco/annotations/instances_train2017.json', 'pipeline': [{'type': 'LoadImageFromFile'}]}}, 'optimizer': {'type': 'SGD', 'lr': 0.01, 'momentum': 0.9, 'weight_decay': 0.0001}, 'optimizer_config': {'grad_clip': None}, 'lr_config': {'policy': 'CosineAnnealing', 'min_lr_ratio': 0.001}, 'runner': {'type': 'EpochBasedRunner', 'max_epochs': 12}, 'checkpoint_config': {'interval': 1}, 'log_config': {'interval': 50, 'hooks': [{'type': 'TextLoggerHook'}]}, 'dist_params': {'backend': 'nccl'}, 'log_level': 'INFO', 'load_from': None, 'resume_from': None, 'workflow': [['train', 1]], 'test_cfg': {'nms_pre': 1000, 'min_bbox_size': 0, 'score_thr': 0.05, 'nms': {'type': 'nms', 'iou_threshold': 0.5}}, 'work_dir': '{root}/work_dirs/retinanet_r18_fpn_1x_custom', 'custom_imports': {'imports': ['json'], 'allow_failed_imports': False}}

# mmcv 1.7.2: the lines of Config.text that are file paths (each file's text follows its path).
MMCV_TEXT_PATHS = ['{root}/_base_/models/retinanet_r50_fpn.py', '{root}/_base_/datasets/coco.yaml', '{root}/_base_/schedules/schedule_1x.py', '{root}/_base_/default_runtime.json', '{root}/retinanet_r18_fpn_1x_custom.py']

MERGE_OPTIONS = {
    "model.backbone.depth": 34, "data.train.pipeline.0.to_float32": True,
    "optimizer": {"_delete_": True, "type": "AdamW", "lr": 1e-4}, "evaluation.interval": 2,
}
# mmcv 1.7.2: these four keys after cfg.merge_from_dict(MERGE_OPTIONS).
MMCV_MERGED = {'model': {'type': 'RetinaNet', 'backbone': {'type': 'ResNet', 'depth': 34, 'num_stages': 4, 'out_indices': (0, 1, 2, 3), 'frozen_stages': 1, 'norm_cfg': {'type': 'GN', 'num_groups': 32}, 'norm_eval': True, 'style': 'pytorch', 'init_cfg': {'type': 'Pretrained', 'checkpoint': 'torchvision://resnet18'}}, 'neck': {'type': 'FPN', 'in_channels': [64, 128, 256, 512], 'out_channels': 256, 'start_level': 1, 'add_extra_convs': 'on_input', 'num_outs': 5}, 'bbox_head': {'type': 'RetinaHead', 'num_classes': 3, 'in_channels': 256, 'stacked_convs': 4, 'feat_channels': 256, 'loss_cls': {'type': 'FocalLoss', 'use_sigmoid': True, 'gamma': 2.0, 'alpha': 0.25, 'loss_weight': 1.0}, 'loss_bbox': {'type': 'L1Loss', 'loss_weight': 1.0}}, 'test_cfg': {'nms_pre': 1000, 'min_bbox_size': 0, 'score_thr': 0.05, 'nms': {'type': 'nms', 'iou_threshold': 0.5}}}, 'data': {'samples_per_gpu': 4, 'workers_per_gpu': 2, 'train': {'type': 'CocoDataset', 'ann_file': 'data/coco/annotations/instances_train2017.json', 'pipeline': [{'type': 'LoadImageFromFile', 'to_float32': True}]}}, 'optimizer': {'type': 'AdamW', 'lr': 0.0001}, 'evaluation': {'interval': 2}}


def _fill(obj: Any, root: Path) -> Any:
    if isinstance(obj, str):
        return obj.replace("{root}", str(root))
    if isinstance(obj, dict):
        return {k: _fill(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill(v, root) for v in obj)
    return obj


def _lists(obj: Any) -> Any:
    """``obj`` with tuples as lists (what JSON and YAML keep)."""
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_lists(v) for v in obj]
    return obj


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


# --------------------------------------------------------------------------- Config: reading


def test_fromfile_merges_bases_as_mmcv(tree: Path) -> None:
    """Python, YAML and JSON bases, ``_delete_``, ``{{ _base_.x }}`` and ``{{ fileDirname }}`` give mmcv's dict."""
    cfg = Config.fromfile(tree / MAIN)
    assert cfg.to_dict() == _fill(MMCV_DICT, tree)
    assert list(cfg) == list(MMCV_DICT)  # the same key order
    assert cfg.filename == str(tree / MAIN)


def test_text_lists_the_bases_then_the_file_as_mmcv(tree: Path) -> None:
    text = Config.fromfile(tree / MAIN).text
    paths = [line for line in text.splitlines() if line.startswith(str(tree))]
    assert paths == _fill(MMCV_TEXT_PATHS, tree)
    assert FILES["_base_/datasets/coco.yaml"] in text and FILES[MAIN] in text


def test_attribute_and_item_access(tree: Path) -> None:
    cfg = Config.fromfile(tree / MAIN)
    assert cfg.model.backbone.depth == 18
    assert cfg["optimizer"]["lr"] == 0.01 and cfg["optimizer"].momentum == 0.9
    assert cfg.get("evaluation") is None and cfg.get("log_level") == "INFO"
    assert cfg.data.train.pipeline[0].type == "LoadImageFromFile"  # dicts inside lists too
    assert isinstance(cfg.model, ConfigDict) and isinstance(cfg.log_config.hooks[0], ConfigDict)
    assert cfg.model.backbone.out_indices == (0, 1, 2, 3)  # tuples stay tuples
    assert "model" in cfg and "evaluation" not in cfg and len(cfg) == len(MMCV_DICT)
    assert sorted(cfg.keys()) == sorted(MMCV_DICT) and dict(cfg.items())["log_level"] == "INFO"
    with pytest.raises(AttributeError, match="'ConfigDict' object has no attribute 'evaluation'"):
        _ = cfg.evaluation
    with pytest.raises(AttributeError, match="no attribute 'pretrained'"):
        _ = cfg.model.pretrained
    with pytest.raises(KeyError):
        _ = cfg["evaluation"]
    assert not hasattr(cfg.model, "pretrained") and getattr(cfg.model, "pretrained", "-") == "-"


def test_setting_values_as_training_scripts_do(tree: Path) -> None:
    cfg = Config.fromfile(tree / MAIN)
    cfg.work_dir = "./work_dirs/run1"
    cfg.gpu_ids = range(1)
    cfg.seed = 0
    cfg.model.backbone.depth = 101
    cfg.data.train.pipeline[0].to_float32 = True
    cfg["evaluation"] = {"interval": 1, "metric": "bbox"}
    cfg.model.pretrained = {"checkpoint": "a.pth"}
    assert cfg.work_dir == "./work_dirs/run1" and list(cfg.gpu_ids) == [0] and cfg.seed == 0
    assert cfg.to_dict()["model"]["backbone"]["depth"] == 101
    assert cfg.to_dict()["data"]["train"]["pipeline"][0] == {"type": "LoadImageFromFile", "to_float32": True}
    assert cfg.evaluation.metric == "bbox" and cfg.model.pretrained.checkpoint == "a.pth"
    del cfg.seed
    assert "seed" not in cfg
    with pytest.raises(ConfigError, match="'filename' is reserved"):
        cfg.filename = "x.py"


def test_merge_from_dict_as_mmcv(tree: Path) -> None:
    cfg = Config.fromfile(tree / MAIN)
    cfg.merge_from_dict(MERGE_OPTIONS)
    merged = cfg.to_dict()
    assert {k: merged[k] for k in MMCV_MERGED} == MMCV_MERGED
    assert merged["runner"] == MMCV_DICT["runner"]  # untouched keys stay


def test_merge_from_dict_list_keys(tree: Path) -> None:
    cfg = Config.fromfile(tree / MAIN)
    with pytest.raises(ConfigError, match="pipeline"):  # mmcv 1.7.2 raises TypeError here
        cfg.merge_from_dict({"data.train.pipeline.0.x": 1}, allow_list_keys=False)
    with pytest.raises(ConfigError, match="index 5 is past the end of a list of 1"):
        cfg.merge_from_dict({"data.train.pipeline.5.x": 1})
    cfg.merge_from_dict({"model.neck.in_channels.1": 100})  # an element set whole: mmcv 1.7.2 fails here
    assert cfg.model.neck.in_channels == [64, 100, 256, 512]
    with pytest.raises(ConfigError, match="log_level"):
        cfg.merge_from_dict({"log_level.x": 1})


def test_fromfile_without_predefined_variables_keeps_them_as_mmcv(tree: Path) -> None:
    cfg = Config.fromfile(tree / MAIN, use_predefined_variables=False)
    # mmcv 1.7.2's value:
    assert cfg.work_dir == "{{ fileDirname }}/work_dirs/{{ fileBasenameNoExtension }}"
    assert Config.fromfile(tree / MAIN).work_dir == f"{tree}/work_dirs/retinanet_r18_fpn_1x_custom"


def test_custom_imports_are_imported(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tree / "pkgs"
    pkg.mkdir()
    (pkg / "my_custom_hooks_mod.py").write_text("IMPORTED = []\nIMPORTED.append(1)\n")
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.delitem(sys.modules, "my_custom_hooks_mod", raising=False)
    (tree / "c.py").write_text("_base_ = 'retinanet_r18_fpn_1x_custom.py'\n"
                               "custom_imports = dict(imports=['my_custom_hooks_mod'], allow_failed_imports=False)\n")
    Config.fromfile(tree / "c.py", import_custom_modules=False)
    assert "my_custom_hooks_mod" not in sys.modules
    cfg = Config.fromfile(tree / "c.py")
    assert sys.modules["my_custom_hooks_mod"].IMPORTED == [1]
    assert cfg.custom_imports.imports == ["my_custom_hooks_mod"]
    monkeypatch.delitem(sys.modules, "my_custom_hooks_mod")


def test_custom_imports_failures(tree: Path) -> None:
    (tree / "bad.py").write_text("custom_imports = dict(imports=['no_such_module_xyz'])\n")
    with pytest.raises(CustomImportError, match="no_such_module_xyz") as info:
        Config.fromfile(tree / "bad.py")
    assert isinstance(info.value, ImportError) and isinstance(info.value, FsmTrainerError)
    (tree / "ok.py").write_text("custom_imports = dict(imports=['no_such_module_xyz'], allow_failed_imports=True)\n")
    with pytest.warns(UserWarning, match="no_such_module_xyz failed to import and is ignored"):
        Config.fromfile(tree / "ok.py")
    (tree / "typo.py").write_text("custom_imports = dict(imports='json', allow_failed=True)\n")
    with pytest.raises(ConfigError, match=r"unknown keys.*allow_failed"):
        Config.fromfile(tree / "typo.py")
    (tree / "notlist.py").write_text("custom_imports = dict(imports=('json',))\n")
    with pytest.raises(MmcvTypeError, match="imports="):
        Config.fromfile(tree / "notlist.py")


def test_errors_on_bad_files_are_config_errors(tree: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        Config.fromfile(tree / "missing.py")
    (tree / "syntax.py").write_text("model = dict(\n")
    with pytest.raises(ConfigError, match="syntax error"):
        Config.fromfile(tree / "syntax.py")
    (tree / "reserved.py").write_text("text = 'x'\n")
    with pytest.raises(ConfigError, match="'text' is reserved"):
        Config.fromfile(tree / "reserved.py")
    with pytest.raises(MmcvTypeError, match="cfg_dict must be a dict, got list"):
        Config([("a", 1)])  # type: ignore[arg-type]


def test_deprecation_key_warns_and_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("a = 1\n_deprecation_ = dict(expected='new.py', reference='https://x')\n")
    with pytest.warns(DeprecationWarning, match="Please use new.py instead"):
        cfg = Config.fromfile(tmp_path / "old.py")
    assert cfg.to_dict() == {"a": 1}


def test_fromstring() -> None:
    cfg = Config.fromstring("model = dict(type='A', depth=[1, 2])\n", ".py")
    assert cfg.model.depth == [1, 2]
    assert Config.fromstring('{"a": {"b": null}}', ".json").to_dict() == {"a": {"b": None}}
    assert Config.fromstring("a:\n  b: [1, 2]\n", ".yaml").a.b == [1, 2]
    with pytest.raises(ConfigError, match=r"file_format='\.txt'"):
        Config.fromstring("a = 1", ".txt")
    with pytest.warns(UserWarning, match="file format may be .py"), pytest.raises(ConfigError):
        Config.fromstring("a = dict(b=1)", ".json")


# --------------------------------------------------------------------------- Config: writing


def test_pretty_text_is_python_that_loads_back(tree: Path) -> None:
    cfg = Config.fromfile(tree / MAIN)
    cfg.merge_from_dict({"odd": {"a-b": 1, 2: (3,)}, "nan": math.inf, "empty": {}, "t1": ("x",)})
    text = cfg.pretty_text
    assert "model = dict(\n    type='RetinaNet'," in text  # long values one item per line
    assert "optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)" in text
    assert "odd = {'a-b': 1, 2: (3,)}" in text
    again = Config.fromstring(text, ".py")
    assert again.to_dict() == cfg.to_dict()
    assert cfg.dump() == text  # a Python config dumps as its pretty text


def test_top_level_keys_that_are_not_names_round_trip() -> None:
    cfg = Config({"a-b": 1, "class": [dict(x=1)], "ok": None})
    text = cfg.pretty_text
    assert "globals()['a-b'] = 1" in text and "globals()['class'] = [dict(x=1)]" in text
    assert Config.fromstring(text, ".py").to_dict() == cfg.to_dict()


@pytest.mark.parametrize("suffix", [".py", ".json", ".yaml"])
def test_dump_and_reload(tree: Path, suffix: str) -> None:
    cfg = Config.fromfile(tree / MAIN)
    cfg.gpu_ids = range(2)
    out = tree / f"dumped{suffix}"
    assert cfg.dump(out) is None
    again = Config.fromfile(out)
    expected = cfg.to_dict()
    expected["gpu_ids"] = [0, 1] if suffix != ".py" else range(2)
    if suffix == ".py":
        assert again.to_dict() == expected
    else:  # JSON and YAML have no tuples
        assert again.to_dict() == _lists(expected)
    if suffix == ".json":
        assert json.loads(again.dump())["gpu_ids"] == [0, 1]  # text in the format of the file name


def test_dump_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    cfg = Config({"model": {"type": object()}})
    with pytest.raises(ConfigError, match="cannot be written as JSON"):
        cfg.dump(tmp_path / "a.json")
    with pytest.raises(ConfigError, match="cannot write a config as 'toml'"):
        Config({"a": 1}).dump(tmp_path / "a.toml")


def test_copies_pickle_and_repr(tree: Path) -> None:
    cfg = Config.fromfile(tree / MAIN)
    shallow, deep = copy.copy(cfg), copy.deepcopy(cfg)
    assert isinstance(deep, Config) and deep.filename == cfg.filename and deep.text == cfg.text
    deep.model.backbone.depth = 50
    shallow.model.backbone.depth = 34
    assert cfg.model.backbone.depth == 34  # the shallow copy shares the dict
    assert deep.model.backbone.depth == 50
    back = pickle.loads(pickle.dumps(cfg))
    assert back.to_dict() == cfg.to_dict() and isinstance(back.model.backbone, ConfigDict)
    as_dict = cfg.copy()  # ConfigDict.copy through the config, as in mmcv
    assert type(as_dict) is ConfigDict and as_dict == cfg.to_dict()
    assert repr(Config({"a": 1})) == "Config (path: None): {'a': 1}"  # mmcv 1.7.2's


def test_config_holds_copies_of_the_dicts_it_is_given() -> None:
    source = {"model": {"backbone": {"depth": 50}}, "pipeline": [{"type": "A"}]}
    cfg = Config(source)
    cfg.model.backbone.depth = 18
    cfg.pipeline[0].type = "B"
    assert source == {"model": {"backbone": {"depth": 50}}, "pipeline": [{"type": "A"}]}  # as mmcv 1.7.2
    optimizer = {"type": "SGD", "lr": 0.1}
    cfg.optimizer = optimizer
    cfg.optimizer.lr = 0.2
    assert optimizer["lr"] == 0.1
    cfg.model.neck = cfg.model.backbone  # a ConfigDict set inside the config is shared, not copied
    cfg.model.neck.depth = 34
    assert cfg.model.backbone.depth == 34


def test_config_dict_update_merges_nested_dicts() -> None:
    d = ConfigDict(model=dict(type="A", backbone=dict(depth=50, frozen=1)))
    d.update({"model": {"backbone": {"depth": 18}}, "x": 1})
    assert d.to_dict() == {"model": {"type": "A", "backbone": {"depth": 18, "frozen": 1}}, "x": 1}
    assert isinstance(d.setdefault("y", {"z": 1}), ConfigDict) and d.y.z == 1
    with pytest.raises(AttributeError, match="read-only"):
        d.items = 1  # type: ignore[method-assign]


# --------------------------------------------------------------------------- DictAction

# mmcv 1.7.2: parser.add_argument('--cfg-options', nargs='+', action=DictAction) on each command line.
DICT_ACTION_CASES: list[tuple[list[str], dict[str, Any]]] = [
    (["a=1"], {"a": 1}),
    (["a=1.5"], {"a": 1.5}),
    (["a=1e3"], {"a": 1000.0}),
    (["a=-2"], {"a": -2}),
    (["a=0x10"], {"a": "0x10"}),
    (["a=1_000"], {"a": 1000}),
    (["a=true"], {"a": True}),
    (["a=False"], {"a": False}),
    (["a=TRUE"], {"a": True}),
    (["a=None"], {"a": None}),
    (["a=none"], {"a": "none"}),
    (["a=null"], {"a": "null"}),
    (["a=abc"], {"a": "abc"}),
    (["a="], {"a": ""}),
    (["a=a,b"], {"a": ["a", "b"]}),
    (["a=1,2,3"], {"a": [1, 2, 3]}),
    (["a=[1,2]"], {"a": [1, 2]}),
    (["a=[]"], {"a": []}),
    (["a=()"], {"a": ()}),
    (["a=(1,)"], {"a": (1,)}),
    (["a=[1,]"], {"a": [1]}),
    (["a=a,"], {"a": ["a"]}),
    (["a=,a"], {"a": ["", "a"]}),
    (["a=(0.9,0.999)"], {"a": (0.9, 0.999)}),
    (["a=[(1,2),[x,y],z]"], {"a": [(1, 2), ["x", "y"], "z"]}),
    (["a=[[1,[2,3]],4]"], {"a": [[1, [2, 3]], 4]}),
    (['a="[1, 2]"'], {"a": [1, 2]}),
    (["a='x'"], {"a": "x"}),
    (["a= 1"], {"a": 1}),
    (["a=[ 1 , 2 ]"], {"a": [1, 2]}),
    (["a=x=y"], {"a": "x=y"}),
    (["a.b.c=1", "d.0.e=x"], {"a.b.c": 1, "d.0.e": "x"}),
    (["a=1.0"], {"a": 1.0}),
    (["a=[a b]"], {"a": ["ab"]}),
    (["a='[1,2]'"], {"a": [1, 2]}),
    (["a=((1,2),(3,4))"], {"a": ((1, 2), (3, 4))}),
    (["a=\"'x'\""], {"a": "x"}),
    (["a=[\"x\",'y']"], {"a": ["x", "y"]}),
    (["a=True,False,None"], {"a": [True, False, None]}),
    (["a=1", "a=2"], {"a": 2}),
    (["a=./work dir"], {"a": "./workdir"}),
    (["a=[[]]"], {"a": [[]]}),
    (["a=[(),[]]"], {"a": [(), []]}),
]


def _parse(*argv: str) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    return parser.parse_args(["cfg.py", "--cfg-options", *argv]).cfg_options  # type: ignore[no-any-return]


@pytest.mark.parametrize(("argv", "expected"), DICT_ACTION_CASES, ids=[" ".join(c[0]) for c in DICT_ACTION_CASES])
def test_dict_action_values_as_mmcv(argv: list[str], expected: dict[str, Any]) -> None:
    """DictAction, and ``fsm-trainer ... --cfg-options`` (the same reading), give mmcv's values."""
    from fsm_trainer.config.loader import parse_options

    for got in (_parse(*argv), parse_options(argv)):
        assert got == expected
        assert repr(got) == repr(expected)  # 1 is not 1.0 or True, a tuple is not a list


def test_dict_action_nan_and_inf() -> None:
    got = _parse("a=nan", "b=inf")  # mmcv 1.7.2: float('nan'), float('inf')
    assert math.isnan(got["a"]) and got["b"] == math.inf


def test_dict_action_errors() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):  # mmcv 1.7.2: a ValueError from unpacking
        _parse("a")
    with pytest.raises(ConfigError, match="unbalanced brackets"):  # mmcv 1.7.2: AssertionError
        _parse("a=[1,2")
    with pytest.raises(ConfigError, match="unbalanced brackets"):
        _parse("a=1,2]")
    with pytest.raises(ConfigError, match="unbalanced brackets"):
        _parse("a=[1,2)")


def test_dict_action_unbracketed_list_of_tuples() -> None:
    """mmcv 1.7.2 recurses without end on ``(1,2),(3,4)``; here it is the list it spells."""
    assert _parse("img_scale=(1333,800),(1333,640)") == {"img_scale": [(1333, 800), (1333, 640)]}


def test_cfg_options_command_line_end_to_end(tree: Path) -> None:
    """What a training script does: parse ``--cfg-options``, merge into the file's config."""
    options = _parse("model.backbone.depth=50", "optimizer.lr=0.005", "data.train.pipeline.0.to_float32=True",
                     "lr_config.step=[4,6]", "model.backbone.out_indices=(1,2)", "evaluation.metric=bbox,segm")
    cfg = Config.fromfile(tree / MAIN)
    cfg.merge_from_dict(options)
    assert cfg.model.backbone.depth == 50 and cfg.optimizer.lr == 0.005 and cfg.optimizer.type == "SGD"
    assert cfg.data.train.pipeline[0].to_float32 is True
    assert cfg.lr_config.step == [4, 6] and cfg.model.backbone.out_indices == (1, 2)
    assert cfg.evaluation.metric == ["bbox", "segm"]


# --------------------------------------------------------------------------- logging


@pytest.fixture
def fresh_loggers() -> Any:
    names: list[str] = []

    def make(name: str) -> str:
        names.append(name)
        return name

    yield make
    for name in names:
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        logger.setLevel(logging.NOTSET)
        mu.logger_initialized.pop(name, None)


def test_get_logger_adds_handlers_once(tmp_path: Path, fresh_loggers: Any) -> None:
    name = fresh_loggers("fsm_test_mmdet")
    log_file = tmp_path / "run.log"
    (tmp_path / "run.log").write_text("old content\n")
    logger = get_logger(name, log_file=str(log_file), log_level=logging.DEBUG)
    kinds = sorted(type(h).__name__ for h in logger.handlers)
    assert kinds == ["FileHandler", "StreamHandler"] and logger.level == logging.DEBUG
    assert get_logger(name, log_level=logging.ERROR) is logger and len(logger.handlers) == 2  # once per name
    logger.debug("hello %d", 3)
    for h in logger.handlers:
        h.flush()
    line = log_file.read_text()
    assert "old content" not in line  # file_mode='w'
    assert line.rstrip().endswith(f" - {name} - DEBUG - hello 3")
    child = get_logger(f"{name}.sub")
    assert child.handlers == [] and child.parent is logger  # a child propagates to its initialised parent


def test_get_logger_on_other_ranks_shows_errors_only(tmp_path: Path, fresh_loggers: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mu, "_rank", lambda: 1)
    logger = get_logger(fresh_loggers("fsm_test_rank1"), log_file=str(tmp_path / "r1.log"))
    assert [type(h).__name__ for h in logger.handlers] == ["StreamHandler"]  # no file on rank 1
    assert logger.level == logging.ERROR and not (tmp_path / "r1.log").exists()


def test_print_log(capsys: pytest.CaptureFixture[str], fresh_loggers: Any, caplog: pytest.LogCaptureFixture) -> None:
    print_log("to stdout")
    assert capsys.readouterr().out == "to stdout\n"
    print_log("nothing", logger="silent")
    assert capsys.readouterr().out == ""
    name = fresh_loggers("fsm_test_print_log")
    with caplog.at_level(logging.INFO, logger=name):
        print_log("by name", logger=name, level=logging.WARNING)
        print_log("by logger", logger=logging.getLogger(name))
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (name, logging.WARNING, "by name"), (name, logging.INFO, "by logger")]
    assert name in mu.logger_initialized  # a name goes through get_logger
    with pytest.raises(MmcvTypeError, match="got int"):
        print_log("x", logger=3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- helpers


def test_mkdir_or_exist(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    mkdir_or_exist(str(target))
    mkdir_or_exist(target)  # exists: nothing happens
    mkdir_or_exist("")
    assert target.is_dir()


# mmcv 1.7.2: (is_seq_of, is_list_of, is_tuple_of) for each (seq, expected_type).
SEQ_CASES: list[tuple[Any, Any, tuple[bool, bool, bool]]] = [
    ([1, 2], int, (True, True, False)),
    ((1, 2), int, (True, False, True)),
    ("ab", str, (True, False, False)),
    ([1, "a"], int, (False, False, False)),
    ({1}, int, (False, False, False)),
    ([], int, (True, True, False)),
    ([1, 2.0], (int, float), (True, True, False)),
    (None, int, (False, False, False)),
]


@pytest.mark.parametrize(("seq", "kind", "expected"), SEQ_CASES)
def test_sequence_checks_as_mmcv(seq: Any, kind: Any, expected: tuple[bool, bool, bool]) -> None:
    assert (is_seq_of(seq, kind), is_list_of(seq, kind), is_tuple_of(seq, kind)) == expected


def test_small_predicates(tmp_path: Path) -> None:
    assert is_str("a") and not is_str(b"a")  # mmcv 1.7.2: True, False
    assert mu.is_filepath("a") and mu.is_filepath(tmp_path) and not mu.is_filepath(1)

    class Base:
        def f(self) -> None: ...

    class Child(Base):
        def f(self) -> None: ...

    assert mu.is_method_overridden("f", Base, Child) and mu.is_method_overridden("f", Base, Child())
    assert not mu.is_method_overridden("f", Base, Base)
    assert mu.has_method(Child(), "f") and not mu.has_method(Child(), "g")
    with pytest.raises(MmcvTypeError, match="base_class must be a class"):
        mu.is_method_overridden("f", Base(), Child)  # type: ignore[arg-type]
    (tmp_path / "a.py").write_text("")
    mu.check_file_exist(tmp_path / "a.py")
    with pytest.raises(FileNotFoundError, match=r'file ".*b\.py" does not exist'):  # mmcv 1.7.2's message
        mu.check_file_exist(str(tmp_path / "b.py"))
    import torch

    assert torch.__version__ == mu.TORCH_VERSION and digit_version(mu.TORCH_VERSION) >= digit_version("2.0")
    with pytest.raises(MmcvTypeError, match="seq_type"):
        is_seq_of([1], int, seq_type=[list])  # type: ignore[arg-type]


# mmcv 1.7.2's digit_version results.
VERSIONS = [
    ("1.7.2", (1, 7, 2, 0, 0, 0)),
    ("2.1.0+cu118", (2, 1, 0, 0, 0, 0)),
    ("1.0rc1", (1, 0, 0, 0, -1, 1)),
    ("1.0a2", (1, 0, 0, 0, -3, 2)),
    ("1.0b3", (1, 0, 0, 0, -2, 3)),
    ("1.0.dev3", (1, 0, 0, 0, -4, 0)),
    ("1.0.post2", (1, 0, 0, 0, 1, 2)),
    ("1.2.3.4.5", (1, 2, 3, 4, 0, 0)),
    ("2", (2, 0, 0, 0, 0, 0)),
    ("1.13.0a0+git", (1, 13, 0, 0, -3, 0)),
    ("2.0.0rc1.post1", (2, 0, 0, 0, -1, 1)),
]


@pytest.mark.parametrize(("version", "expected"), VERSIONS)
def test_digit_version_as_mmcv(version: str, expected: tuple[int, ...]) -> None:
    assert digit_version(version) == expected


def test_digit_version_length_and_errors() -> None:
    assert digit_version("1.7.2", length=2) == (1, 7, 0, 0)  # mmcv 1.7.2's
    assert digit_version("1.0rc1") < digit_version("1.0") < digit_version("1.0.post1") < digit_version("1.0.1")
    with pytest.raises(MmcvValueError, match="'parrots'"):
        digit_version("parrots")


def test_collect_env() -> None:
    import torch

    env = collect_env()
    assert env["PyTorch"] == torch.__version__ and env["CUDA available"] is torch.cuda.is_available()
    assert env["sys.platform"] == sys.platform and env["Python"].startswith(sys.version.split()[0])
    assert {"PyTorch compiling details", "fsm_trainer"} <= env.keys()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_get_git_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert get_git_hash() == "unknown" and get_git_hash(fallback="none") == "none"
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    assert get_git_hash() == sha and get_git_hash(digits=7) == sha[:7]
    with pytest.raises(MmcvTypeError, match="digits"):
        get_git_hash(digits="7")  # type: ignore[arg-type]


def test_registry_names_are_reexported() -> None:
    from fsm_trainer.mmcv import registry

    assert mu.Registry is registry.Registry and mu.build_from_cfg is registry.build_from_cfg
    reg = mu.Registry("thing")

    @reg.register_module()
    class Thing:
        def __init__(self, size: int) -> None:
            self.size = size

    assert mu.build_from_cfg(Config({"t": {"type": "Thing", "size": 3}}).t, reg).size == 3

