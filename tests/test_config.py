"""Config files: mmcv-style loading and merging, strict structuring, path-named errors."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm_trainer.config import ConfigError, from_dict, load, load_config, parse_options
from fsm_trainer.config.build import hook_specs
from fsm_trainer.config.loader import merge, parse_value

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

VALID = {
    "model": {"type": "DigitsNet", "hidden": 8},
    "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
    "optimizer_config": {"grad_clip": None},
    "data": {"samples_per_gpu": 64, "workers_per_gpu": 0, "train": {"type": "DigitsDataset", "split": "train"},
             "val": {"type": "DigitsDataset", "split": "val"}},
    "runner": {"type": "EpochBasedRunner", "max_epochs": 2},
    "workflow": [("train", 1), ("val", 1)],
    "lr_config": {"policy": "step", "step": [1], "warmup": "linear", "warmup_iters": 5},
    "momentum_config": {"policy": "cosine_annealing".replace("_", ""), "min_momentum_ratio": 0.9},
    "checkpoint_config": {"interval": 1, "max_keep_ckpts": 1},
    "log_config": {"interval": 5, "hooks": [{"type": "TextLoggerHook"}]},
    "custom_hooks": [{"type": "EMAHook", "momentum": 0.01, "priority": "ABOVE_NORMAL"}],
    "evaluation": {"interval": 1, "metric": "accuracy"},
    "seed": 0,
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def test_shipped_configs_load():
    """Every config in configs/ loads and validates."""
    names = sorted(p.name for p in CONFIGS.glob("*.*"))
    assert {"digits_mlp.py", "digits_mlp_iter.py", "digits_mlp_short.yaml"} <= set(names)
    for name in names:
        load(CONFIGS / name)


def test_base_inheritance_delete_and_base_vars(tmp_path):
    """_base_ merges dicts key by key, _delete_ replaces, {{ _base_.x }} copies a base value."""
    write(tmp_path, "base/a.py", """
        optimizer = dict(type='SGD', lr=0.1, momentum=0.9)
        lr_config = dict(policy='step', step=[8, 11])
        width = 16
    """)
    write(tmp_path, "base/b.yaml", "runner: {type: EpochBasedRunner, max_epochs: 12}\n")
    child = write(tmp_path, "child.py", """
        _base_ = ['base/a.py', 'base/b.yaml']
        optimizer = dict(lr=0.01)
        lr_config = dict(_delete_=True, policy='fixed')
        model = dict(type='DigitsNet', hidden={{ _base_.width }})
        name = '{{ fileBasenameNoExtension }}'
    """)
    cfg = load_config(child)
    assert cfg["optimizer"] == {"type": "SGD", "lr": 0.01, "momentum": 0.9}
    assert cfg["lr_config"] == {"policy": "fixed"}
    assert cfg["model"]["hidden"] == 16
    assert cfg["name"] == "child"
    assert cfg["runner"]["max_epochs"] == 12


def test_toml_and_duplicate_bases(tmp_path):
    """TOML configs load; a key defined by two bases is an error naming it."""
    write(tmp_path, "a.toml", "seed = 1\n[runner]\ntype = 'EpochBasedRunner'\nmax_epochs = 2\n")
    write(tmp_path, "b.json", '{"seed": 2}')
    assert load_config(tmp_path / "a.toml")["runner"]["max_epochs"] == 2
    c = write(tmp_path, "c.py", "_base_ = ['a.toml', 'b.json']\n")
    with pytest.raises(ConfigError, match="more than one _base_ file: seed"):
        load_config(c)


def test_merge_type_conflict_is_named():
    """A dict over a non-dict base value needs _delete_; the message says so with the path."""
    with pytest.raises(ConfigError, match=r"a\.b: is a dict here but a int .*_delete_=True"):
        merge({"a": {"b": 1}}, {"a": {"b": {"c": 2}}})


def test_cfg_options():
    """--cfg-options values parse as mmcv's DictAction; digit keys index lists."""
    assert parse_options(["a.b=1", "c=[1,2]", "d=(0.9,0.999)", "e=None", "f=x,y", "g=False"]) == {
        "a.b": 1, "c": [1, 2], "d": (0.9, 0.999), "e": None, "f": ["x", "y"], "g": False}
    assert parse_value("[[1,2],(3,4)]") == [[1, 2], (3, 4)]
    cfg = load_config(CONFIGS / "digits_mlp.py", ["log_config.hooks.0.interval=7", "runner.max_epochs=3"])
    assert cfg["log_config"]["hooks"][0] == {"type": "TextLoggerHook", "interval": 7}
    assert cfg["runner"]["max_epochs"] == 3
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_options(["nonsense"])
    with pytest.raises(ConfigError, match="unbalanced"):
        parse_options(["a=[1,2"])


def test_all_errors_at_once_with_paths():
    """Shape and value errors of different keys come in one ConfigError, each with its path."""
    raw = copy.deepcopy(VALID)
    raw["lr_config"]["step"] = [1, "x"]
    raw["data"]["samples_per_gpu"] = "64"
    raw["checkpoint_config"]["intervl"] = 2
    raw["model"]["type"] = "DigitNet"
    raw["runner"]["max_iters"] = 5
    raw["optimzer"] = {}
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    errs = info.value.errors
    assert "lr_config.step[1]: expected an int, got str 'x'" in errs
    assert "data.samples_per_gpu: expected an int, got str '64'" in errs
    assert any(e.startswith("optimzer: unknown key; did you mean 'optimizer'? (1 edit away") for e in errs)
    assert any(e.startswith("checkpoint_config.intervl: unknown key") and "did you mean 'interval'" in e for e in errs)
    assert any(e.startswith("model.type: 'DigitNet'") and "did you mean 'DigitsNet'" in e for e in errs)
    assert "runner.max_iters: not allowed for EpochBasedRunner; give max_epochs" in errs


def test_value_errors_from_builders_are_path_named():
    """Bad values found by the hooks' own checks are reported under their config key."""
    raw = copy.deepcopy(VALID)
    raw["lr_config"] = {"policy": "step", "step": [1], "warmup": "cubic", "warmup_iters": 5}
    raw["custom_hooks"] = [{"type": "EMAHook", "momentum": 2.0}]
    raw["workflow"] = [("val", 1)]
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    text = str(info.value)
    assert "lr_config.warmup: warmup='cubic' is invalid" in text
    assert "custom_hooks[0].momentum: EMA momentum must be in (0, 1)" in text
    assert "workflow:" in text


def test_helper_variables_are_kept():
    """Unknown top-level names not close to a known key are helper variables (mmcv configs use them)."""
    cfg = from_dict({**VALID, "img_norm_cfg": {"mean": [0]}, "_private": 1})
    assert set(cfg.variables) == {"img_norm_cfg", "_private"}


def test_hook_specs_follow_mmcv_registration():
    """Hooks come in mmcv's registration order; IterBasedRunner defaults by_epoch=False where mmcv does."""
    specs = hook_specs(from_dict(VALID))
    assert [s.path for s in specs] == ["lr_config", "momentum_config", "optimizer_config", "checkpoint_config",
                                       "(timer)", "log_config.hooks[0]", "custom_hooks[0]", "evaluation"]
    assert [s.type for s in specs][:2] == ["StepLrUpdaterHook", "CosineAnnealingMomentumUpdaterHook"]
    assert specs[5].kwargs["interval"] == 5
    raw = {**copy.deepcopy(VALID), "runner": {"type": "IterBasedRunner", "max_iters": 20},
           "workflow": [("train", 10)], "momentum_config": None,
           "lr_config": {"policy": "step", "step": [10]}}
    it = {s.path: s for s in hook_specs(from_dict(raw))}
    assert it["lr_config"].kwargs["by_epoch"] is False
    assert it["checkpoint_config"].kwargs["by_epoch"] is False
    assert it["log_config.hooks[0]"].kwargs["by_epoch"] is False
    assert it["evaluation"].kwargs["by_epoch"] is False


# --------------------------------------------------------------------------- many malformed configs

WRONG = {int: "3", float: "0.1", str: 3, bool: 1, list: 5, dict: [1]}


def leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, (*path, k))
    elif isinstance(obj, list) and obj and not isinstance(obj[0], tuple):
        for i, v in enumerate(obj):
            yield from leaves(v, (*path, i))
    else:
        yield path, obj


def render(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def set_at(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


TYPED_LEAVES = [(p, v) for p, v in leaves(VALID)
                if type(v) in (int, float, str, bool) and p[-1] not in ("type", "policy", "metric", "split", "priority")
                and p[0] not in ("workflow",)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(range(len(TYPED_LEAVES))), min_size=1, max_size=4, unique=True))
def test_wrong_types_are_all_reported_with_their_paths(picks):
    """Replacing any set of typed leaves by values of the wrong type yields one error per leaf, at its path."""
    raw = copy.deepcopy(VALID)
    paths = []
    for i in picks:
        path, v = TYPED_LEAVES[i]
        set_at(raw, path, WRONG[type(v)])
        paths.append(render(path))
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    errs = info.value.errors
    for p in paths:
        assert any(e.startswith(f"{p}:") for e in errs), (p, errs)


SECTIONS = ["optimizer", "lr_config", "checkpoint_config", "log_config", "data", "runner", "model"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SECTIONS), st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
def test_unknown_keys_are_named(section, key):
    """An unknown key in any section is reported at <section>.<key>."""
    raw = copy.deepcopy(VALID)
    target = raw[section]
    if key in target or key in ("type", "hooks", "interval", "policy") or (section == "model" and key == "hidden"):
        return
    target[key] = 1
    if section == "optimizer" and key in ("dampening", "nesterov", "maximize", "foreach", "differentiable",
                                          "fused", "params"):
        return
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    assert any(e.startswith(f"{section}.{key}:") for e in info.value.errors), info.value.errors


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["model", "data", "optimizer", "runner"]))
def test_missing_required_key(key):
    """A missing required section is named."""
    raw = copy.deepcopy(VALID)
    del raw[key]
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    assert f"{key}: required key missing" in info.value.errors


def test_seed_samples_loader_key_reaches_the_loaders():
    """data.<split>_dataloader.seed_samples builds loaders that seed each sample (train and val)."""
    from fsm_trainer.config.build import build_loader
    from fsm_trainer.sampler import SampleSeeded

    raw = load_config(CONFIGS / "digits_mlp.py", ["data.train_dataloader.seed_samples=True",
                                                   "data.val_dataloader.seed_samples=True"])
    cfg = from_dict(raw)
    for split in ("train", "val"):
        loader = build_loader(list(range(10)), cfg, split, seed=0)
        assert isinstance(loader.dataset, SampleSeeded), split
    plain = build_loader(list(range(10)), from_dict(load_config(CONFIGS / "digits_mlp.py")), "val", seed=0)
    assert not isinstance(plain.dataset, SampleSeeded)
    with pytest.raises(ConfigError, match="seed_sample: unknown key; did you mean 'seed_samples'"):
        from fsm_trainer.config.build import check_config

        check_config(from_dict(load_config(CONFIGS / "digits_mlp.py", ["data.train_dataloader.seed_sample=True"])))
