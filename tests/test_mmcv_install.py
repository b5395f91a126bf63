"""``fsm_trainer.mmcv.install()``: code that imports ``mmcv.runner`` runs unchanged on fsm_trainer's mmcv layer.

``install()`` changes the interpreter's import system, so the checks run in fresh interpreters, three
in all: one script of API checks whose sections the tests below read (:func:`api`), an unchanged mmcv
training script run by ``python -m fsm_trainer.mmcv.run``, and a fake mmcv package that ``install()``
must refuse to shadow.

:data:`MMCV_RESULT` is what :data:`TRAIN_SCRIPT` wrote when run on mmcv 1.7.2 itself (the scratch venv of
``tools/record_mmcv_traces.py``), from a folder holding it as ``train.py``::

    /tmp/mmcvenv/bin/python -c "import sys; sys.path.insert(0, '<repo>/tools'); import _mmcv_env, runpy; \\
        sys.argv = ['train.py', '--out', 'gold.json', '--epochs', '2']; runpy.run_path('train.py', run_name='__main__')"

without loader workers (``_mmcv_env``'s stubs do not reach a spawned worker); the test runs it with one
(``--workers 1``), which yields the same batches.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fsm_trainer.mmcv import run as run_module
from fsm_trainer.mmcv._install import installed

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mmcv") is not None,
    reason="a real mmcv is importable here: install() refuses to shadow it, by design",
)

# The module files of mmcv 1.7.2's runner, utils and parallel packages
# (find mmcv/runner mmcv/utils mmcv/parallel -name '*.py' in its wheel).
MMCV_MODULES = [
    'mmcv.parallel', 'mmcv.parallel._functions', 'mmcv.parallel.collate', 'mmcv.parallel.data_container',
    'mmcv.parallel.data_parallel', 'mmcv.parallel.distributed', 'mmcv.parallel.distributed_deprecated',
    'mmcv.parallel.registry', 'mmcv.parallel.scatter_gather', 'mmcv.parallel.utils', 'mmcv.runner',
    'mmcv.runner.base_module', 'mmcv.runner.base_runner', 'mmcv.runner.builder', 'mmcv.runner.checkpoint',
    'mmcv.runner.default_constructor', 'mmcv.runner.dist_utils', 'mmcv.runner.epoch_based_runner',
    'mmcv.runner.fp16_utils', 'mmcv.runner.hooks', 'mmcv.runner.hooks.checkpoint', 'mmcv.runner.hooks.closure',
    'mmcv.runner.hooks.ema', 'mmcv.runner.hooks.evaluation', 'mmcv.runner.hooks.hook',
    'mmcv.runner.hooks.iter_timer', 'mmcv.runner.hooks.logger', 'mmcv.runner.hooks.logger.base',
    'mmcv.runner.hooks.logger.clearml', 'mmcv.runner.hooks.logger.dvclive', 'mmcv.runner.hooks.logger.mlflow',
    'mmcv.runner.hooks.logger.neptune', 'mmcv.runner.hooks.logger.pavi', 'mmcv.runner.hooks.logger.segmind',
    'mmcv.runner.hooks.logger.tensorboard', 'mmcv.runner.hooks.logger.text', 'mmcv.runner.hooks.logger.wandb',
    'mmcv.runner.hooks.lr_updater', 'mmcv.runner.hooks.memory', 'mmcv.runner.hooks.momentum_updater',
    'mmcv.runner.hooks.optimizer', 'mmcv.runner.hooks.profiler', 'mmcv.runner.hooks.sampler_seed',
    'mmcv.runner.hooks.sync_buffer', 'mmcv.runner.iter_based_runner', 'mmcv.runner.log_buffer',
    'mmcv.runner.optimizer', 'mmcv.runner.optimizer.builder', 'mmcv.runner.optimizer.default_constructor',
    'mmcv.runner.priority', 'mmcv.runner.utils', 'mmcv.utils', 'mmcv.utils.config', 'mmcv.utils.device_type',
    'mmcv.utils.env', 'mmcv.utils.ext_loader', 'mmcv.utils.hub', 'mmcv.utils.logging', 'mmcv.utils.misc',
    'mmcv.utils.parrots_jit', 'mmcv.utils.parrots_wrapper', 'mmcv.utils.path', 'mmcv.utils.progressbar',
    'mmcv.utils.registry', 'mmcv.utils.seed', 'mmcv.utils.testing', 'mmcv.utils.timer', 'mmcv.utils.torch_ops',
    'mmcv.utils.trace', 'mmcv.utils.version_utils',
]

# A training script written for mmcv 1.x, not changed in any way.
TRAIN_SCRIPT = '''\
import argparse
import json
import logging
import sys
import tempfile

import torch

import mmcv
from mmcv.runner import HOOKS, EpochBasedRunner, Hook, build_runner
from mmcv.runner.hooks import LrUpdaterHook
from mmcv.runner.hooks.lr_updater import CosineAnnealingLrUpdaterHook

assert (1, 3, 17) <= tuple(int(x) for x in mmcv.__version__.split('.')[:3]) < (1, 8, 0), mmcv.__version__


class Net(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)

    def train_step(self, data, optimizer, **kwargs):
        x, y = data
        loss = torch.nn.functional.cross_entropy(self(x), y)
        return dict(loss=loss, log_vars=dict(loss=loss.item()), num_samples=len(y))

    def val_step(self, data, optimizer=None, **kwargs):
        with torch.no_grad():
            return self.train_step(data, optimizer)


seen = []


@HOOKS.register_module()
class RecordHook(Hook):

    def after_train_iter(self, runner):
        seen.append(['iter', runner.epoch, runner.iter, runner.inner_iter, runner.current_lr()[0]])

    def after_train_epoch(self, runner):
        seen.append(['epoch', runner.epoch, runner.iter])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', required=True)
    parser.add_argument('--epochs', type=int, default=1)
    parser.add_argument('--workers', type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g))
    # Workers started as on macOS: each imports this script again.
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=args.workers, persistent_workers=args.workers > 0,
                                         multiprocessing_context='spawn' if args.workers else None)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with tempfile.TemporaryDirectory() as work_dir:
        runner = build_runner(dict(type='EpochBasedRunner', max_epochs=args.epochs),
                              default_args=dict(model=model, optimizer=optimizer, work_dir=work_dir,
                                                logger=logging.getLogger('train')))
        runner.register_training_hooks(dict(policy='CosineAnnealing', min_lr=0.01), dict(grad_clip=None))
        runner.register_hook_from_cfg(dict(type='RecordHook'))
        lr_hooks = [type(h).__name__ for h in runner.hooks if isinstance(h, LrUpdaterHook)]
        cosine = sum(isinstance(h, CosineAnnealingLrUpdaterHook) for h in runner.hooks)
        runner.run([loader], [('train', 1)])
    assert isinstance(runner, EpochBasedRunner)
    with open(args.out, 'w') as f:
        json.dump(dict(argv=sys.argv, name=__name__, lr_hooks=lr_hooks, cosine=cosine, path0=sys.path[0],
                       seen=seen, weights=[round(v, 6) for v in model.fc.weight.flatten().tolist()]), f)


if __name__ == '__main__':
    main()
'''

# What TRAIN_SCRIPT wrote on mmcv 1.7.2 (see the module docstring).
MMCV_RESULT: dict[str, Any] = {
    "lr_hooks": ["CosineAnnealingLrUpdaterHook"], "cosine": 1,
    "seen": [["iter", 0, 0, 0, 0.1], ["iter", 0, 1, 1, 0.1], ["iter", 0, 2, 2, 0.1], ["epoch", 0, 3],
             ["iter", 1, 3, 0, 0.05500000000000001], ["iter", 1, 4, 1, 0.05500000000000001],
             ["iter", 1, 5, 2, 0.05500000000000001], ["epoch", 1, 6]],
    "weights": [-0.10287, 0.154791, -0.394262, -0.168641, 0.043266, 0.07905, -0.063829, 0.27675, -0.181089,
                0.300765, -0.114445, -0.177916],
}

# One interpreter, checks in sections that share its state; each section's result or traceback goes to stdout.
API_SCRIPT = '''\
import importlib, importlib.util, json, os, sys, traceback
import fsm_trainer.mmcv as fm
from fsm_trainer.mmcv import _install as layer

out = {}
MODULES = json.loads(sys.argv[1])
stray = sys.argv[2]  # holds an empty folder named mmcv (a namespace package, not an mmcv distribution)


def section(fn):
    try:
        out[fn.__name__] = fn()
    except BaseException:
        out[fn.__name__] = {"error": traceback.format_exc()}


def failure(stmt):
    try:
        exec(stmt, {})
    except BaseException as exc:
        return [[c.__name__ for c in type(exc).__mro__], str(exc)]
    return None


@section
def imports():
    sys.path.insert(0, stray)
    n = len(sys.meta_path)
    layer.install()
    sys.path.remove(stray)
    layer.install()
    from mmcv.runner import EpochBasedRunner, Hook, HOOKS, build_runner
    from mmcv.runner.hooks import LrUpdaterHook
    from mmcv.runner.hooks.lr_updater import CosineAnnealingLrUpdaterHook
    from mmcv.runner import hooks
    import mmcv
    import mmcv.runner.hooks.logger.text
    fm.AddedLater = object()
    from mmcv.runner.hooks.lr_updater import AddedLater
    star = {}
    exec("from mmcv.runner import *", star)
    broken = {}
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
            assert mod.__name__ == name and sys.modules[name] is mod, mod
        except BaseException as exc:
            broken[name] = repr(exc)
    return {
        "finders_added": len(sys.meta_path) - n, "installed": layer.installed(), "broken": broken,
        "same": {
            "EpochBasedRunner": EpochBasedRunner is fm.EpochBasedRunner, "Hook": Hook is fm.Hook,
            "HOOKS": HOOKS is fm.HOOKS, "build_runner": build_runner is fm.build_runner,
            "LrUpdaterHook": LrUpdaterHook is fm.LrUpdaterHook,
            "CosineAnnealingLrUpdaterHook": CosineAnnealingLrUpdaterHook is fm.CosineAnnealingLrUpdaterHook,
            "hook module HOOKS": mmcv.runner.hooks.hook.HOOKS is fm.HOOKS,
            "added later": AddedLater is fm.AddedLater,
            "star EpochBasedRunner": star.get("EpochBasedRunner") is fm.EpochBasedRunner,
            "text logger": mmcv.runner.hooks.logger.text.TextLoggerHook is fm.TextLoggerHook,
            "mmcv.runner attr": mmcv.runner is sys.modules["mmcv.runner"],
        },
        "hooks_name": hooks.__name__,
        "dir_runner": sorted({"hooks", "EpochBasedRunner", "checkpoint"} & set(dir(mmcv.runner))),
        "packages": [mmcv.runner.__name__, mmcv.utils.__name__, mmcv.parallel.__name__],
        "missing_name": failure("import mmcv.runner.hooks.lr_updater as m; m.no_such_name"),
    }


@section
def version():
    import mmcv
    from mmcv.version import __version__
    # mmdet 2.28's check: mmcv_minimum_version = '1.3.17', mmcv_maximum_version = '1.8.0'.
    digits = tuple(int(x) for x in mmcv.__version__.split("."))
    return {"version": mmcv.__version__, "version_info": list(mmcv.version_info), "from_version": __version__,
            "mmdet_accepts": (1, 3, 17) <= digits < (1, 8, 0)}


@section
def out_of_scope():
    import mmcv
    stmts = ["import mmcv.ops", "from mmcv import ops", "from mmcv.cnn import ConvModule", "import mmcv.fileio",
             "import mmcv.image", "import mmcv.transforms", "import mmcv._ext"]
    return {"imports": {s: failure(s) for s in stmts}, "attribute": failure("import mmcv; mmcv.imread"),
            "hasattr_ops": hasattr(mmcv, "ops"), "not_in_tree": failure("import mmcv.runner.no_such_module")}


@section
def utils():
    import fsm_trainer.mmcv.utils as fu
    import mmcv
    from mmcv.utils import (Config, DictAction, Registry, build_from_cfg, digit_version, get_logger,
                            is_str, mkdir_or_exist, print_log)
    from mmcv.utils.config import Config as config_Config
    from mmcv.utils.registry import Registry as registry_Registry
    from mmcv.utils.logging import get_logger as logging_get_logger
    return {"same": {
        "Config": Config is fu.Config, "DictAction": DictAction is fu.DictAction, "Registry": Registry is fu.Registry,
        "build_from_cfg": build_from_cfg is fu.build_from_cfg, "get_logger": get_logger is fu.get_logger,
        "print_log": print_log is fu.print_log, "mkdir_or_exist": mkdir_or_exist is fu.mkdir_or_exist,
        "is_str": is_str is fu.is_str, "digit_version": digit_version is fu.digit_version,
        "config.Config": config_Config is fu.Config, "registry.Registry": registry_Registry is fu.Registry,
        "logging.get_logger": logging_get_logger is fu.get_logger,
        "mmcv.Config": mmcv.Config is fu.Config, "mmcv.mkdir_or_exist": mmcv.mkdir_or_exist is fu.mkdir_or_exist,
        "mmdet version check": digit_version("1.3.17") <= digit_version(mmcv.__version__) < digit_version("1.8.0"),
    }}


@section
def parallel():
    import fsm_trainer.mmcv.parallel as fp
    from mmcv.parallel import (MODULE_WRAPPERS, DataContainer, MMDataParallel, MMDistributedDataParallel, collate,
                               is_module_wrapper, scatter)
    from mmcv.parallel.collate import collate as collate_collate
    from mmcv.parallel.data_container import DataContainer as dc_DataContainer
    from mmcv.parallel.data_parallel import MMDataParallel as dp_MMDataParallel
    from mmcv.parallel.distributed import MMDistributedDataParallel as d_MMDistributedDataParallel
    from mmcv.parallel.scatter_gather import scatter as sg_scatter
    from mmcv.parallel.utils import is_module_wrapper as u_is_module_wrapper
    import mmcv.parallel.collate as imported_collate  # mmcv's package binds the function over its submodule
    return {"same": {
        "MODULE_WRAPPERS": MODULE_WRAPPERS is fp.MODULE_WRAPPERS, "DataContainer": DataContainer is fp.DataContainer,
        "MMDataParallel": MMDataParallel is fp.MMDataParallel,
        "MMDistributedDataParallel": MMDistributedDataParallel is fp.MMDistributedDataParallel,
        "collate": collate is fp.collate, "import collate": imported_collate is fp.collate,
        "collate module": sys.modules["mmcv.parallel.collate"].__name__ == "mmcv.parallel.collate", "is_module_wrapper": is_module_wrapper is fp.is_module_wrapper,
        "scatter": scatter is fp.scatter, "collate.collate": collate_collate is fp.collate,
        "data_container.DataContainer": dc_DataContainer is fp.DataContainer,
        "data_parallel.MMDataParallel": dp_MMDataParallel is fp.MMDataParallel,
        "distributed.MMDistributedDataParallel": d_MMDistributedDataParallel is fp.MMDistributedDataParallel,
        "scatter_gather.scatter": sg_scatter is fp.scatter, "utils.is_module_wrapper": u_is_module_wrapper is fp.is_module_wrapper,
    }}


@section
def uninstall():
    from mmcv.runner import EpochBasedRunner
    n = len(sys.meta_path)
    layer.uninstall()
    after = {"installed": layer.installed(), "finders_removed": n - len(sys.meta_path),
             "left": sorted(k for k in sys.modules if k == "mmcv" or k.startswith("mmcv.")),
             "import_mmcv": failure("import mmcv"), "runner_usable": EpochBasedRunner is fm.EpochBasedRunner}
    layer.uninstall()
    layer.install()
    import mmcv.runner
    after["reinstalled"] = mmcv.runner.Hook is fm.Hook
    layer.uninstall()
    after["finders_at_end"] = len(sys.meta_path) - n
    return after


print(json.dumps(out))
'''


def _python(args: list[str], cwd: Path, pythonpath: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*pythonpath, ROOT])}
    return subprocess.run([sys.executable, "-W", "error", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sections of :data:`API_SCRIPT`, run in one fresh interpreter."""
    tmp = tmp_path_factory.mktemp("mmcv_api")
    (tmp / "stray" / "mmcv").mkdir(parents=True)
    proc = _python(["-c", API_SCRIPT, json.dumps(MMCV_MODULES), str(tmp / "stray")], cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _section(api: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = api[name]
    assert "error" not in result, result.get("error")
    return result


@pytest.mark.slow
def test_mmcv_runner_imports_give_fsm_trainer_mmcv_objects(api: dict[str, Any]) -> None:
    """``from mmcv.runner... import X`` gives fsm_trainer.mmcv's X, for every module of mmcv 1.7.2's tree."""
    got = _section(api, "imports")
    assert got["broken"] == {}
    assert {k for k, v in got["same"].items() if not v} == set()
    assert got["installed"] is True
    assert got["finders_added"] == 1  # the second install() added nothing
    assert got["hooks_name"] == "mmcv.runner.hooks"  # the served package, not fsm_trainer.mmcv.hooks
    assert got["dir_runner"] == ["EpochBasedRunner", "checkpoint", "hooks"]
    assert got["packages"] == ["mmcv.runner", "mmcv.utils", "mmcv.parallel"]
    kinds, message = got["missing_name"]
    assert "AttributeError" in kinds
    assert "'mmcv.runner.hooks.lr_updater' has no attribute 'no_such_name'" in message
    assert "fsm_trainer.mmcv" in message


@pytest.mark.slow
def test_mmcv_version_passes_downstream_checks(api: dict[str, Any]) -> None:
    """``mmcv.__version__`` is 1.7.2's, inside the range mmdet 2.28 accepts."""
    got = _section(api, "version")
    assert got == {"version": "1.7.2", "version_info": [1, 7, 2], "from_version": "1.7.2", "mmdet_accepts": True}


@pytest.mark.slow
def test_other_mmcv_parts_fail_with_a_scope_message(api: dict[str, Any]) -> None:
    """``import mmcv.ops`` (and cnn, fileio...) raises ModuleNotFoundError saying what the layer provides."""
    got = _section(api, "out_of_scope")
    for stmt, failure in got["imports"].items():
        assert failure is not None, stmt
        kinds, message = failure
        assert "ModuleNotFoundError" in kinds and "MmcvCompatError" in kinds, stmt
        module = stmt.split()[1]
        assert f"'{module}" in message, (stmt, message)
        assert "mmcv.runner, mmcv.utils and mmcv.parallel only" in message and "out of scope" in message
    kinds, message = got["attribute"]
    assert "AttributeError" in kinds
    assert "'imread'" in message and "out of scope" in message and "mmcv.fileio" in message
    assert got["hasattr_ops"] is False
    kinds, message = got["not_in_tree"]  # not part of mmcv either: the usual error
    assert kinds[0] == "ModuleNotFoundError" and message == "No module named 'mmcv.runner.no_such_module'"


@pytest.mark.slow
def test_uninstall_restores_the_import_system(api: dict[str, Any]) -> None:
    """After ``uninstall()`` no mmcv module is left and ``import mmcv`` fails as before; install() works again."""
    got = _section(api, "uninstall")
    assert got["installed"] is False
    assert got["finders_removed"] == 1
    assert got["left"] == []
    assert got["import_mmcv"] == [["ModuleNotFoundError", "ImportError", "Exception", "BaseException", "object"],
                                  "No module named 'mmcv'"]
    assert got["runner_usable"] is True
    assert got["reinstalled"] is True
    assert got["finders_at_end"] == -1  # the finder of the first install() is gone too


@pytest.mark.slow
def test_mmcv_utils_names_are_fsm_trainer_mmcv_utils(api: dict[str, Any]) -> None:
    """``mmcv.utils`` (and its config, registry, logging modules, and top-level ``mmcv``) serve fsm_trainer.mmcv.utils."""
    got = _section(api, "utils")
    assert {k for k, v in got["same"].items() if not v} == set()


@pytest.mark.slow
def test_mmcv_parallel_names_are_fsm_trainer_mmcv_parallel(api: dict[str, Any]) -> None:
    """``mmcv.parallel`` and its submodules serve fsm_trainer.mmcv.parallel's names."""
    got = _section(api, "parallel")
    assert {k for k, v in got["same"].items() if not v} == set()


@pytest.mark.slow
def test_unchanged_mmcv_script_trains_as_on_mmcv(tmp_path: Path) -> None:
    """``python -m fsm_trainer.mmcv.run tools/train.py --out ...`` runs an mmcv script; results equal mmcv 1.7.2's.

    Its DataLoader worker is started with ``spawn``: that process imports the script, and ``mmcv``, again.
    """
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "train.py").write_text(TRAIN_SCRIPT)
    args = ["tools/train.py", "--out", "out.json", "--epochs", "2", "--workers", "1"]
    proc = _python(["-m", "fsm_trainer.mmcv.run", *args], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["argv"] == args
    assert got["name"] == "__main__"
    assert Path(got["path0"]) == tmp_path / "tools"  # as ``python tools/train.py`` has it
    assert got["lr_hooks"] == MMCV_RESULT["lr_hooks"] and got["cosine"] == MMCV_RESULT["cosine"]
    assert len(got["seen"]) == len(MMCV_RESULT["seen"])
    for ours, theirs in zip(got["seen"], MMCV_RESULT["seen"], strict=True):
        assert ours[:4] == theirs[:4]
        assert ours[4:] == pytest.approx(theirs[4:], rel=1e-12)
    assert got["weights"] == pytest.approx(MMCV_RESULT["weights"], abs=2e-6)


@pytest.mark.slow
def test_install_refuses_a_real_mmcv(tmp_path: Path) -> None:
    """A real mmcv on the path, importable or imported, makes install() (and the run entry) refuse, naming it."""
    fake = tmp_path / "site" / "mmcv"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("__version__ = '1.6.0'\n")
    (tmp_path / "script.py").write_text("open('ran', 'w').close()\n")
    script = textwrap.dedent('''\
        import contextlib, io, json, sys
        from fsm_trainer.mmcv import _install as layer
        from fsm_trainer.mmcv.hook import MmcvCompatError
        from fsm_trainer.mmcv.run import main

        out = {}
        n = len(sys.meta_path)
        try:
            layer.install()
        except MmcvCompatError as exc:
            out["importable"] = str(exc)
        out["unchanged"] = [layer.installed(), len(sys.meta_path) - n]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out["run"] = [main(["script.py"]), err.getvalue()]
        import mmcv
        sys.path.remove(sys.argv[1])  # the fake is no longer findable, only imported
        try:
            layer.install()
        except MmcvCompatError as exc:
            out["imported"] = str(exc)
        out["fake_kept"] = mmcv.__version__
        print(json.dumps(out))
    ''')
    proc = _python(["-c", script, str(tmp_path / "site")], cwd=tmp_path, pythonpath=[tmp_path / "site"])
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("importable", "imported"):
        assert "mmcv 1.6.0" in got[key] and str(fake) in got[key], got[key]
        assert "Uninstall it" in got[key] and "keep using" in got[key]
    assert "is importable from" in got["importable"]
    assert "already imported" in got["imported"]
    assert got["unchanged"] == [False, 0]
    rc, err = got["run"]
    assert rc == 2 and "mmcv 1.6.0" in err
    assert not (tmp_path / "ran").exists()
    assert got["fake_kept"] == "1.6.0"


def test_run_entry_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The run entry explains a missing or absent script (exit 2) and prints help, without installing anything."""
    assert run_module.main([]) == 2
    assert "usage: python -m fsm_trainer.mmcv.run <script.py>" in capsys.readouterr().err
    missing = tmp_path / "nope.py"
    assert run_module.main([str(missing), "--flag"]) == 2
    assert f"script {str(missing)!r} does not exist" in capsys.readouterr().err
    assert run_module.main(["--help"]) == 0
    assert "sys.argv" in capsys.readouterr().out
    assert installed() is False
    assert "mmcv" not in sys.modules
