"""``fsm-trainer``'s handling of user errors and failed runs, its console output and the ``test`` command.

In-process (``main([...])``) wherever a real process is not needed; one subprocess checks the
installed ``fsm-trainer`` script itself.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import run_cli

from fsm_trainer.logs import curves, global_iters, is_by_epoch, plot_logs, read_log

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "digits_mlp.py"
FAST = ["runner.max_epochs=2", "data.samples_per_gpu=256", "log_config.interval=2"]


def cli(*args: str) -> tuple[int, str, str]:
    """``main(args)`` in this process: ``(exit code, stdout, stderr)``; the interpreter's state given back."""
    r = run_cli(*args)
    return r.returncode, r.stdout, r.stderr


def files_in(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) if d.exists() else []


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, str]:
    """One short run of the digits example (2 epochs), in-process; its work dir and output."""
    wd = tmp_path_factory.mktemp("trained") / "wd"
    code, out, err = cli("train", str(CONFIG), "--work-dir", str(wd), "--progress", "off", "--cfg-options", *FAST)
    return wd, code, out, err


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the current directory, with ``sys.path`` and ``sys.modules`` restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("cli_err_"):
            del sys.modules[name]


# --------------------------------------------------------------------------- the console and the summary


def test_console_shows_log_lines_one_eval_line_and_a_summary(trained):
    """At INFO: no hook-order dump, one line per evaluation (marking a new best), then the run's summary."""
    wd, code, out, err = trained
    assert code == 0, err
    assert "hooks will be executed in the following order" not in out
    assert "Exp name" not in out and "Now best checkpoint" not in out
    evals = [line for line in out.splitlines() if "Epoch(val)" in line and "accuracy:" in line]
    assert len(evals) == 2 and "(new best: best_accuracy_epoch_" in evals[0]
    summary = out[out.index("done: epoch 2, iter 12 in "):]
    assert "best accuracy: " in summary and str(wd / "best_accuracy_epoch_") in summary
    assert f"last checkpoint: {wd / 'epoch_2'}" in summary
    assert f"work dir: {wd}" in summary
    meta = read_log(next(wd.glob("*.log.json"))).meta
    assert meta["by"] == "epoch" and meta["epoch_len"] == 6


def test_hook_order_is_shown_at_debug(tmp_path):
    """``log_level='DEBUG'`` shows the hook order the runner logs at the start."""
    code, out, err = cli("train", str(CONFIG), "--work-dir", str(tmp_path / "wd"), "--progress", "off",
                         "--cfg-options", *FAST, "runner.max_epochs=1", "log_level=DEBUG")
    assert code == 0, err
    assert "hooks will be executed in the following order" in out and "CliSession" in out


# --------------------------------------------------------------------------- exit codes and messages


def test_user_error_exit_2_one_line_traceback_with_verbose(tmp_path, monkeypatch):
    """A bad config: exit 2 and its message; -v or FSM_TRAINER_DEBUG=1 adds the traceback."""
    args = ["train", str(CONFIG), "--work-dir", str(tmp_path / "wd"), "--cfg-options", "optimizer.lr=nan"]
    code, _, err = cli(*args)
    assert code == 2 and "optimizer.lr: nan is not allowed; allowed: a finite number > 0" in err
    assert "Traceback" not in err
    code, _, err = cli("-v", *args)
    assert code == 2 and "Traceback (most recent call last)" in err and "ConfigError" in err
    code, _, err = cli(*args[:1], "-v", *args[1:])
    assert code == 2 and "Traceback" in err
    monkeypatch.setenv("FSM_TRAINER_DEBUG", "1")
    code, _, err = cli(*args)
    assert code == 2 and "Traceback" in err
    assert files_in(tmp_path / "wd") == []


def _write_model(d: Path, name: str, body: str) -> None:
    (d / f"{name}.py").write_text(
        "from fsm_trainer.examples.digits import DigitsNet\n"
        "class Model(DigitsNet):\n"
        "    calls = 0\n"
        "    def train_step(self, batch, optimizer=None):\n"
        "        type(self).calls += 1\n"
        f"{body}"
        "        return super().train_step(batch, optimizer)\n", encoding="utf-8")


def test_failure_during_the_run_exit_1_names_the_last_checkpoint(module_dir):
    """An error after training started: exit 1, the error in one line, the last committed checkpoint."""
    _write_model(module_dir, "cli_err_boom",
                 "        if type(self).calls == 5:\n            raise RuntimeError('boom')\n")
    wd = module_dir / "wd"
    code, _, err = cli("train", str(CONFIG), "--work-dir", str(wd), "--progress", "off", "--cfg-options", *FAST,
                       "model.type=cli_err_boom:Model", "checkpoint_config.interval=3",
                       "checkpoint_config.by_epoch=False")
    assert code == 1
    assert "the run failed: RuntimeError: boom" in err and "Traceback" not in err
    assert f"last checkpoint: {wd / 'iter_3'}" in err and f"fsm-trainer resume {wd}" in err
    assert (wd / "config.json").is_file()  # written when the run started: resume finds it


def test_disk_full_during_the_run_exit_1(module_dir):
    """An OS error (ENOSPC, EFBIG) during the run: exit 1 with the OS's words, no traceback."""
    _write_model(module_dir, "cli_err_full",
                 "        import errno\n        if type(self).calls == 4:\n"
                 "            raise OSError(errno.EFBIG, 'File too large', 'big.bin')\n")
    code, _, err = cli("train", str(CONFIG), "--work-dir", str(module_dir / "wd"), "--progress", "off",
                       "--cfg-options", *FAST, "model.type=cli_err_full:Model")
    assert code == 1 and "the run failed: File too large: big.bin" in err and "no checkpoint was saved" in err
    assert "Traceback" not in err


def test_os_error_before_the_run_exit_2(tmp_path, monkeypatch):
    """Disk full when the work dir's first file is written: exit 2 with the OS's words, nothing left behind."""
    import fsm_trainer.cli as cli_module

    def full(cfg, work_dir):
        raise OSError(errno.ENOSPC, "No space left on device", str(work_dir / "config.json"))

    monkeypatch.setattr(cli_module, "_dump_config", full)
    code, _, err = cli("train", str(CONFIG), "--work-dir", str(tmp_path / "wd"), "--cfg-options", *FAST)
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    assert files_in(tmp_path / "wd") == []


def test_keyboard_interrupt_exit_130(module_dir):
    """A second Ctrl-C (KeyboardInterrupt) ends with 130."""
    _write_model(module_dir, "cli_err_ctrl_c",
                 "        if type(self).calls == 2:\n            raise KeyboardInterrupt\n")
    code, _, err = cli("train", str(CONFIG), "--work-dir", str(module_dir / "wd"), "--progress", "off",
                       "--cfg-options", *FAST, "model.type=cli_err_ctrl_c:Model")
    assert code == 130 and "interrupted" in err


def test_uncreatable_work_dir_exit_2(tmp_path):
    """A work dir under a file cannot be created: exit 2 before anything is built."""
    (tmp_path / "a_file").write_text("x")
    code, _, err = cli("train", str(CONFIG), "--work-dir", str(tmp_path / "a_file" / "wd"), "--cfg-options", *FAST)
    assert code == 2 and "cannot be created" in err and "a_file is not a directory" in err
    code, _, err = cli("train", str(CONFIG), "--work-dir", str(tmp_path / "a_file"), "--cfg-options", *FAST)
    assert code == 2 and "exists and is not a directory" in err


def test_resume_from_a_text_file_is_an_error_not_a_fallback(trained, tmp_path):
    """``--resume notes.txt`` beside valid checkpoints: exit 2 naming the file, no other checkpoint used."""
    wd = trained[0]
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    for target in (notes, wd / "notes"):
        if target.parent == wd:
            target.write_text("todo\n")
        code, _, err = cli("train", str(CONFIG), "--work-dir", str(tmp_path / "wd2"), "--resume", str(target),
                           "--cfg-options", *FAST)
        assert code == 2, err
        assert "not an fsm_trainer checkpoint" in err and str(target) in err
        assert files_in(tmp_path / "wd2") == []
    (wd / "notes").unlink()
    code, _, err = cli("train", str(CONFIG), "--work-dir", str(tmp_path / "wd3"), "--resume", str(tmp_path / "nope"),
                       "--cfg-options", *FAST)
    assert code == 2 and "--resume" in err and "no such checkpoint" in err


def test_missing_extra_fails_validation_in_plan_and_train(tmp_path, monkeypatch):
    """A logger whose package is missing: plan and train both exit 2 with the pip install line."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    cfg = tmp_path / "tb.py"
    cfg.write_text(f"_base_ = {str(CONFIG)!r}\n"
                   "log_config = dict(hooks=[dict(type='TextLoggerHook'), dict(type='TensorboardLoggerHook'),\n"
                   "                         dict(type='MlflowLoggerHook')])\n")
    for command in (["plan", str(cfg)], ["train", str(cfg), "--work-dir", str(tmp_path / "wd")]):
        code, _, err = cli(*command, "--cfg-options", *FAST)
        assert code == 2, err
        assert "log_config.hooks[1].type: TensorboardLoggerHook needs the tensorboard package" in err
        assert "pip install tensorboard" in err
        assert "log_config.hooks[2].type: MlflowLoggerHook needs the mlflow package" in err
    assert files_in(tmp_path / "wd") == []


def test_help_points_to_the_readme_section():
    """--help names the README's distributed section, not a docs file that does not exist."""
    code, out, _ = cli("train", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "docs/distributed.md" not in text and "README section 'Distributed training" in text
    code, out, _ = cli("--help")
    assert code == 0 and "test" in out


def test_replay_iters_must_be_positive(trained):
    """``replay --iters -3`` is refused by the argument parser (exit 2)."""
    code, _, err = cli("replay", str(trained[0] / "epoch_2"), "--iters", "-3")
    assert code == 2 and "expected a positive integer, got -3" in err


# --------------------------------------------------------------------------- models from configs


def test_plain_module_with_a_loss_from_the_config(tmp_path):
    """``model=torch.nn:Linear`` with ``loss`` (or ``loss_fn``) trains; without it, exit 2 saying what to add."""
    cfg = tmp_path / "linear.py"
    cfg.write_text(f"_base_ = {str(CONFIG)!r}\n"
                   "model = dict(_delete_=True, type='torch.nn:Linear', in_features=64, out_features=10)\n"
                   "loss = dict(type='CrossEntropyLoss', label_smoothing=0.1)\n")
    code, out, err = cli("train", str(cfg), "--work-dir", str(tmp_path / "wd"), "--progress", "off",
                         "--cfg-options", *FAST)
    assert code == 0, err
    assert "Epoch(val) [2][3]\taccuracy:" in out
    saved = json.loads((tmp_path / "wd" / "config.json").read_text())
    assert saved["loss"] == {"type": "CrossEntropyLoss", "label_smoothing": 0.1}
    alias = tmp_path / "alias.py"
    alias.write_text(cfg.read_text().replace("loss = ", "loss_fn = "))
    code, _, err = cli("train", str(alias), "--work-dir", str(tmp_path / "wd2"), "--progress", "off",
                       "--cfg-options", *FAST, "runner.max_epochs=1")
    assert code == 0, err
    cfg.write_text(cfg.read_text().replace("loss = dict(type='CrossEntropyLoss', label_smoothing=0.1)\n", ""))
    code, _, err = cli("train", str(cfg), "--work-dir", str(tmp_path / "wd3"), "--cfg-options", *FAST)
    assert code == 2 and "model.type: torch.nn:Linear has no train_step/val_step" in err
    assert "loss=dict(type='CrossEntropyLoss')" in err


def test_custom_imports_find_modules_in_the_current_directory(module_dir):
    """``custom_imports`` and ``type='module:Name'`` find a module in the current directory (not on sys.path)."""
    (module_dir / "cli_err_hooks.py").write_text(
        "from fsm_trainer import Hook\nfrom fsm_trainer.registry import HOOKS\n"
        "@HOOKS.register(force=True)\n"
        "def CliErrMarker(priority='NORMAL'):\n"
        "    return Hook('CliErrMarker', priority, {'after_run': lambda s: (print('marker ran'), s)[1]})\n")
    _write_model(module_dir, "cli_err_model", "")
    (module_dir / "cfg.py").write_text(f"_base_ = {str(CONFIG)!r}\n"
                                       "custom_imports = dict(imports=['cli_err_hooks'])\n"
                                       "custom_hooks = [dict(type='CliErrMarker')]\n"
                                       "model = dict(type='cli_err_model:Model')\n")
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != cwd]
    code, out, err = cli("train", "cfg.py", "--work-dir", "wd", "--progress", "off", "--cfg-options", *FAST,
                         "runner.max_epochs=1")
    assert code == 0, err
    assert "marker ran" in out


@pytest.mark.slow
def test_installed_script_imports_from_the_current_directory(tmp_path):
    """The ``fsm-trainer`` script (sys.path[0] is its bin directory) finds ``custom_imports`` in the cwd."""
    script = Path(sys.executable).with_name("fsm-trainer")
    if not script.exists():
        pytest.skip("the fsm-trainer script is not installed next to this Python")
    (tmp_path / "my_local_hooks.py").write_text("print('imported my_local_hooks')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(script), "plan", str(CONFIG), "--cfg-options", *FAST,
                        "custom_imports.imports=[my_local_hooks]"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=240, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert "imported my_local_hooks" in r.stdout


# --------------------------------------------------------------------------- test


def test_test_command_evaluates_a_checkpoint(trained, tmp_path):
    """``test CONFIG CHECKPOINT``: the configured metrics on data.val (no data.test here); exit 0."""
    wd = trained[0]
    code, out, err = cli("test", str(CONFIG), str(wd / "epoch_2"), "--json", str(tmp_path / "m.json"))
    assert code == 0, err
    assert "data.val (359 samples), metric='accuracy'" in out and "accuracy: 0." in out
    data = json.loads((tmp_path / "m.json").read_text())
    log = read_log(next(wd.glob("*.log.json")))
    last_eval = [r for r in log.records if r["mode"] == "val" and "accuracy" in r][-1]
    assert data["metrics"]["accuracy"] == pytest.approx(last_eval["accuracy"], abs=1e-4)
    for target in (wd, wd / "latest"):  # a work dir or its latest file
        code, out, _ = cli("test", str(CONFIG), str(target))
        assert code == 0 and "accuracy: " in out
    code, _, err = cli("test", str(CONFIG), str(tmp_path / "missing"))
    assert code == 2 and "no such checkpoint" in err
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    code, _, err = cli("test", str(CONFIG), str(tmp_path / "notes.txt"))
    assert code == 2 and "Traceback" not in err
    code, _, err = cli("test", str(CONFIG), str(wd / "epoch_2"), "--cfg-options", "model.hidden=64")
    assert code == 2 and "net.0.weight" in err


# --------------------------------------------------------------------------- plot


def _log(path: Path, meta: dict, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in [meta, *records]) + "\n")
    return path


def test_plot_x_axis_is_global_across_epochs_and_resumed_logs(tmp_path):
    """45 batches per epoch, logged every 20 (the tail not logged): 20 epochs end at 900, and a resumed
    log file continues where the first ended instead of restarting at 0."""
    meta = {"exp_name": "x", "by": "epoch", "epoch_len": 45}

    def epoch(e: int) -> list[dict]:
        return [{"mode": "train", "epoch": e, "iter": i, "loss": 1.0 / e} for i in (20, 40)] + [
            {"mode": "val", "epoch": e, "iter": 12, "accuracy": 0.5}]

    first = _log(tmp_path / "a.log.json", meta, [r for e in range(1, 11) for r in epoch(e)])
    second = _log(tmp_path / "b.log.json", meta, [r for e in range(11, 21) for r in epoch(e)])
    recs = read_log(second).records
    xs = global_iters(recs, by_epoch=True, epoch_len=45)
    assert xs[:3] == [10 * 45 + 20, 10 * 45 + 40, 11 * 45] and xs[-1] == 900
    train_x, _ = curves(recs, "loss", by_epoch=True, epoch_len=45)["train"]
    assert train_x[-1] == 19 * 45 + 40
    # without the meta line, the epoch length is inferred from the iters; iter-based logs are global already
    assert is_by_epoch(recs) and not is_by_epoch([{"mode": "train", "epoch": 1, "iter": 50},
                                                  {"mode": "train", "epoch": 2, "iter": 100}])
    out = plot_logs([first, second], ["loss", "accuracy"], tmp_path / "curves.png")
    assert out.stat().st_size > 1000
    code, _, err = cli("plot", str(first), str(second), "--keys", "loss", "--out", str(tmp_path / "c.svg"))
    assert code == 0 and (tmp_path / "c.svg").is_file(), err


def test_plot_errors_exit_2(tmp_path):
    """A missing log, an unknown image format, a missing output directory, no such key: exit 2, no traceback."""
    log = _log(tmp_path / "a.log.json", {}, [{"mode": "train", "epoch": 1, "iter": 1, "loss": 1.0}])
    cases = [
        ([str(tmp_path / "missing.log.json"), "--out", str(tmp_path / "x.png")], "no such log file"),
        ([str(log), "--out", str(tmp_path / "x.xyz")], "unknown image format '.xyz'"),
        ([str(log), "--out", str(tmp_path / "no_dir" / "x.png")], "does not exist"),
        ([str(log), "--keys", "nope", "--out", str(tmp_path / "x.png")], "none of the keys nope"),
    ]
    (tmp_path / "bad.log.json").write_text("{not json\n")
    cases.append(([str(tmp_path / "bad.log.json"), "--out", str(tmp_path / "x.png")], "bad.log.json:1: not JSON"))
    for args, expect in cases:
        code, _, err = cli("plot", *args)
        assert code == 2, (args, err)
        assert expect in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
    code, _, err = cli("plan", str(CONFIG), "--out", str(tmp_path / "nodir" / "p.png"))
    assert code == 2 and "does not exist" in err
