"""``tools/record_mmcv_init.py`` (the scenarios recorded from mmcv 1.7.2) and its golden file, for the tests
that replay those scenarios on ``fsm_trainer.mmcv``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN: dict[str, Any] = json.loads((ROOT / "tests" / "golden" / "mmcv_api" / "init.json").read_text())


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location("record_mmcv_init", ROOT / "tools" / "record_mmcv_init.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("record_mmcv_init", mod)
    spec.loader.exec_module(mod)
    return mod


TOOL = _tool()
