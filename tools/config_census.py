"""How many training configs of a directory ``fsm-trainer train`` accepts, and why the others are not.

    python tools/config_census.py DIR [DIR ...] [--swap-digits] [--register MODULE] [--examples 2] [--json out.json]

Every ``*.py``/``*.yaml``/``*.json`` file under ``DIR`` outside ``_base_`` directories is loaded
with its bases (:func:`fsm_trainer.config.load_config`); files without ``optimizer`` (dataset,
model or test-only configs) are not training configs and are skipped. Each training config is
then validated and built as ``train`` does before its run (datasets and loaders included).

``--swap-digits`` replaces the model and the datasets by the digits example, as the
real-config tests do: ``model=dict(type='DigitsNet')``, ``data.train/val/test`` digits
datasets (:class:`tests.configs_real.digits_support.DigitsEvalDataset`, with mmcv's
``evaluate`` protocol, answering the config's ``evaluation.metric`` names as the real dataset
does), the batch size and
the ``*_dataloader`` overrides kept, no workers. The rest of the config (schedules, runner,
hooks, evaluation, runtime) is the real one. Downstream registrations (hooks, optimizers,
LR policies, optimizer constructors of mmdet, mmseg...) are not provided: configs needing them
are counted as rejected, under the unregistered name.

The report gives, per directory, the accepted count and the reasons of the others, grouped
(each config counted once per reason; a config may have several).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import re
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = "tests.configs_real.digits_support"
SUFFIXES = (".py", ".yaml", ".yml", ".json")


def config_files(directory: Path) -> list[Path]:
    """The config files under ``directory``, ``_base_`` directories left out, sorted."""
    return sorted(p for p in directory.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                  and "_base_" not in p.relative_to(directory).parts and not p.name.startswith("."))


def _metric_names(evaluation: Any) -> list[str]:
    if not isinstance(evaluation, Mapping):
        return []
    metric = evaluation.get("metric", "accuracy")
    items = [metric] if isinstance(metric, str) else metric if isinstance(metric, (list, tuple)) else []
    return [m for m in items if isinstance(m, str)]


def swap_for_digits(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with the model and the datasets replaced by the digits example (see the module docstring)."""
    cfg = dict(raw)
    cfg["model"] = {"type": "DigitsNet"}
    data = raw.get("data") if isinstance(raw.get("data"), Mapping) else {}
    evaluation = raw.get("evaluation") if isinstance(raw.get("evaluation"), Mapping) else {}
    names = _metric_names(evaluation) or ["accuracy"]
    save_best = evaluation.get("save_best")
    keys = [save_best] if isinstance(save_best, str) and save_best != "auto" else []

    def split(name: str) -> dict[str, Any]:
        return {"type": "DigitsEvalDataset", "split": name, "metrics": names, "result_keys": keys}

    imports = dict(cfg.get("custom_imports") or {})
    listed = imports.get("imports", [])
    listed = [listed] if isinstance(listed, str) else list(listed)
    cfg["custom_imports"] = {**imports, "imports": [*listed, SUPPORT]}
    swapped: dict[str, Any] = {"samples_per_gpu": data.get("samples_per_gpu", 32), "workers_per_gpu": 0,
                               "train": split("train"), "val": split("val"), "test": split("val")}
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if isinstance(data.get(key), Mapping):
            swapped[key] = {k: v for k, v in data[key].items() if k != "workers_per_gpu"}
    cfg["data"] = swapped
    return cfg


def check_one(path: Path, *, swap: bool) -> tuple[str, list[str]]:
    """``("skipped" | "accepted" | "rejected", reasons)`` for one config file."""
    from fsm_trainer.config import ConfigError, from_dict, load_config
    from fsm_trainer.config.build import build

    try:
        raw = load_config(path)
    except ConfigError as exc:
        if any("must be a mapping at the top level" in e for e in exc.errors):
            return "skipped", []  # a metafile, not a config
        return "rejected", [f"(file) {e}" for e in exc.errors]
    except Exception as exc:
        return "rejected", [f"(file) {type(exc).__name__}: {exc}"]
    if "optimizer" not in raw:
        return "skipped", []
    if swap:
        raw = swap_for_digits(raw)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            cfg = from_dict(raw)
            build(cfg, build_data=True)
    except ConfigError as exc:
        return "rejected", list(exc.errors)
    except Exception as exc:
        return "rejected", [f"(build) {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
    return "accepted", []


def reason_key(error: str) -> str:
    """A rejection message reduced to what configs share: list indices, numbers and listings removed.

    >>> reason_key("custom_hooks[2].type: 'NumClassCheckHook' is not a registered hook; registered: A, B")
    "custom_hooks[i].type: 'NumClassCheckHook' is not a registered hook"
    """
    text = re.sub(r"\[\d+\]", "[i]", error)
    text = re.split(r"; (?:registered|allowed|Registered|Allowed|did you mean)|\. Allowed|; see ", text)[0]
    text = re.sub(r"(?<![\w'])-?\d+(\.\d+)?(e-?\d+)?(?![\w'])", "N", text)
    return text[:160]


def census(directory: Path, *, swap: bool) -> dict[str, Any]:
    """Counts and grouped reasons for the configs under ``directory``."""
    counts: Counter[str] = Counter()
    reasons: dict[str, list[str]] = defaultdict(list)
    for path in config_files(directory):
        status, errors = check_one(path, swap=swap)
        counts[status] += 1
        for key in dict.fromkeys(reason_key(e) for e in errors):
            reasons[key].append(str(path.relative_to(directory)))
    total = counts["accepted"] + counts["rejected"]
    return {"directory": str(directory), "training_configs": total, "accepted": counts["accepted"],
            "rejected": counts["rejected"], "skipped": counts["skipped"],
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -len(kv[1])))}


def format_report(result: Mapping[str, Any], examples: int = 2, limit: int = 40) -> str:
    """The text report of one :func:`census` result."""
    lines = [f"{result['directory']}: {result['accepted']} of {result['training_configs']} training configs accepted "
             f"({result['skipped']} other files skipped)"]
    for i, (key, paths) in enumerate(result["reasons"].items()):
        if i == limit:
            lines.append(f"  ... {len(result['reasons']) - limit} more reasons")
            break
        shown = ", ".join(paths[:examples])
        lines.append(f"  {len(paths):5d}  {key}" + (f"   e.g. {shown}" if examples else ""))
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path)
    parser.add_argument("--swap-digits", action="store_true", help="replace model and data by the digits example")
    parser.add_argument("--examples", type=int, default=2, help="example files shown per reason")
    parser.add_argument("--limit", type=int, default=40, help="reasons shown per directory")
    parser.add_argument("--json", type=Path, help="also write the full result (every file per reason) here")
    parser.add_argument("--register", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (user code registering downstream hooks, optimizers...)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    sys.path.insert(0, str(ROOT))
    logging.getLogger("fsm_trainer").setLevel(logging.ERROR)
    from fsm_trainer.config.builtins import register_builtins

    register_builtins()
    for module in args.register:
        importlib.import_module(module)
    results = []
    for d in args.directories:
        if not d.is_dir():
            parser.error(f"{d}: not a directory")
        result = census(d, swap=args.swap_digits)
        results.append(result)
        print(format_report(result, args.examples, args.limit), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
