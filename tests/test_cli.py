"""``fsm-trainer`` end to end: exit codes, outputs and files written.

The commands run in this process (``fsm_trainer.cli.main``, output captured, the interpreter's
state given back: ``tests/_cli.py``); the interrupt test needs a real process, and starts
``python -m fsm_trainer`` as a user does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "digits_mlp.py"
FAST = ["--cfg-options", "runner.max_epochs=2", "data.samples_per_gpu=256", "log_config.interval=2"]
cli = run_cli

pytestmark = pytest.mark.slow  # end to end: most train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run of the digits config, shared by the tests that read its work dir."""
    cwd = tmp_path_factory.mktemp("cli")
    r = cli("train", str(CONFIG), "--work-dir", "wd", *FAST, cwd=cwd)
    return cwd, r


def test_help_for_every_command(tmp_path):
    """Each command has --help (exit 0); an unknown command or a missing argument exits 2."""
    for cmd in ("train", "show", "plan", "resume", "replay", "test", "plot"):
        r = cli(cmd, "--help", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "usage: fsm-trainer" in r.stdout
    assert cli("--help", cwd=tmp_path).returncode == 0
    assert cli("nonsense", cwd=tmp_path).returncode == 2
    assert cli("replay", "x", cwd=tmp_path).returncode == 2  # --iters is required


def test_train_writes_logs_checkpoints_and_config(trained):
    """train exits 0, prints mmcv log lines (no progress bar off a terminal) and writes its files."""
    cwd, r = trained
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Epoch [1][2/6]" in r.stdout and "Epoch(val) [2]" in r.stdout
    assert "it/s" not in r.stderr  # no tqdm bar when stderr is not a terminal
    wd = cwd / "wd"
    names = {p.name for p in wd.iterdir()}
    assert {"config.json", "epoch_2", "latest"} <= names  # interval 5: only the last (save_last)
    assert any(n.startswith("best_accuracy_epoch_") for n in names)
    assert any(n.endswith(".log.json") for n in names)
    saved = json.loads((wd / "config.json").read_text())
    assert saved["runner"]["max_epochs"] == 2
    assert saved["data"]["samples_per_gpu"] == 256


def test_bad_config_exit_2_without_traceback(tmp_path):
    """A config with several mistakes exits 2 and lists every one with its path; no traceback."""
    bad = tmp_path / "bad.py"
    bad.write_text(f"_base_ = '{CONFIG}'\nlr_config = dict(step=[1, 'x'])\n"
                   "optimizer = dict(lr='fast')\nrunner = dict(max_epoch=3)\n")
    r = cli("train", str(bad), cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "lr_config.step[1]: expected an int, got str 'x'" in r.stderr
    assert "optimizer.lr: expected a number, got str 'fast'" in r.stderr
    assert "runner.max_epoch: unknown key; did you mean 'max_epochs'?" in r.stderr
    r = cli("train", str(CONFIG), "--cfg-options", "runner=", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = cli("train", str(tmp_path / "missing.py"), cwd=tmp_path)
    assert r.returncode == 2 and "no such config file" in r.stderr


def test_show(tmp_path):
    """show prints the resolved config, the hook order per point and the table in text and Mermaid."""
    r = cli("show", str(ROOT / "configs" / "digits_mlp_iter.py"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "'max_iters': 600" in out
    assert "# hook order per point" in out and "(VERY_HIGH   ) CosineAnnealingLrUpdaterHook" in out
    assert "TransitionTable(by='iter', max_iters=600" in out
    assert "stateDiagram-v2" in out


def test_plan_table_and_plot(tmp_path):
    """plan prints LR per iteration and events, and --out/--json write the plot and the data."""
    r = cli("plan", str(CONFIG), *FAST, "--out", "plan.png", "--json", "plan.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ckpt:epoch_2" in r.stdout and "eval" in r.stdout and "log:TextLoggerHook" in r.stdout
    assert (tmp_path / "plan.png").stat().st_size > 1000
    data = json.loads((tmp_path / "plan.json").read_text())
    assert len(data["rows"]) == 12 and data["kept"] == ["epoch_2"]


def test_plot_resume_replay(trained):
    """plot draws curves from the run's log; resume continues it; replay prints one JSON line per iteration."""
    cwd, r = trained
    assert r.returncode == 0
    log = next((cwd / "wd").glob("*.log.json"))
    p = cli("plot", str(log), "--keys", "loss", "acc", "--out", "curves.png", cwd=cwd)
    assert p.returncode == 0, p.stderr
    assert (cwd / "curves.png").stat().st_size > 1000
    assert cli("plot", str(log), "--keys", "nope", "--out", "x.png", cwd=cwd).returncode == 2

    rs = cli("resume", "wd", "--cfg-options", "runner.max_epochs=3", cwd=cwd)
    assert rs.returncode == 0, rs.stderr[-3000:]
    assert "resumed from" in rs.stdout
    assert (cwd / "wd" / "epoch_3").is_dir()
    assert "Epoch [1][" not in rs.stdout  # continued, not restarted

    rp = cli("replay", str(cwd / "wd" / "epoch_2"), "--iters", "3", "--quiet", cwd=cwd)
    assert rp.returncode == 0, rp.stderr
    lines = [json.loads(x) for x in rp.stdout.splitlines() if x.startswith("{")]
    assert [x["iter"] for x in lines] == [12, 13, 14]


def test_interrupt_saves_and_exits_130(tmp_path):
    """``python -m fsm_trainer train``: SIGINT to the process during training saves a checkpoint,
    ends the run and exits 130."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsm_trainer", "train", str(ROOT / "configs" / "digits_mlp_iter.py"), "--work-dir",
         "wd", "--cfg-options", "runner.max_iters=100000", "log_config.interval=5"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.time() + 180
    for line in proc.stdout:
        if "Iter [" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "fsm-trainer resume" in err
    assert any(p.name.startswith("iter_") for p in (tmp_path / "wd").iterdir())


def test_failed_run_exit_1(tmp_path):
    """An exception inside the run is a failed run: exit 1 with its message (the traceback with -v)."""
    (tmp_path / "broken_model_pkg.py").write_text(
        "from fsm_trainer.examples.digits import DigitsNet\n"
        "class Broken(DigitsNet):\n"
        "    def train_step(self, batch, optimizer=None):\n"
        "        raise RuntimeError('boom')\n")
    r = cli("train", str(CONFIG), *FAST, "model.type=broken_model_pkg:Broken", "--work-dir", "wd", cwd=tmp_path)
    assert r.returncode == 1
    assert "RuntimeError: boom" in r.stderr and "Traceback" not in r.stderr
    r = cli("-v", "train", str(CONFIG), *FAST, "model.type=broken_model_pkg:Broken", "--work-dir", "wd2",
            cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr and "RuntimeError: boom" in r.stderr
