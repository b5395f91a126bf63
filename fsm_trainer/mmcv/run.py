"""Run an unchanged mmcv 1.x script on fsm_trainer: ``python -m fsm_trainer.mmcv.run tools/train.py [args...]``.

Installs fsm_trainer's mmcv layer (``fsm_trainer.mmcv.install()``), then runs the script as ``python
tools/train.py args...`` would: as ``__main__``, with ``sys.argv == ['tools/train.py', *args]`` and the
script's folder first on ``sys.path``; a process group the script leaves is destroyed, on every
rank together, once it returns. Processes that re-import the script (``spawn``/``forkserver``
DataLoader workers) inherit ``sys.path`` but not the layer: a temporary ``mmcv`` package last on
``sys.path`` installs it there (``_install._adopt``).
"""

from __future__ import annotations

import atexit
import os
import runpy
import shutil
import sys
import tempfile
from collections.abc import Sequence

from fsm_trainer.mmcv._install import install
from fsm_trainer.mmcv.hook import MmcvCompatError

USAGE = "usage: python -m fsm_trainer.mmcv.run <script.py> [args...]"


def main(argv: Sequence[str] | None = None) -> int:
    """Install the mmcv layer and run ``argv[0]`` with ``argv[1:]`` as its arguments.

    Returns 2 (after a message on stderr) when no script is given, the script does not exist or a
    real mmcv is installed; otherwise 0 once the script returns (its exceptions and ``sys.exit`` propagate).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(f"{USAGE}\n\n{__doc__}")
        return 0
    if not args or not os.path.exists(args[0]):
        what = f"script {args[0]!r} does not exist (cwd: {os.getcwd()})" if args else "the script to run is missing"
        print(f"{USAGE}\nerror: {what}", file=sys.stderr)
        return 2
    try:
        install()
    except MmcvCompatError as exc:
        print(f"fsm_trainer.mmcv.run: {exc}", file=sys.stderr)
        return 2
    shim = tempfile.mkdtemp(prefix="fsm_trainer_mmcv_")
    atexit.register(shutil.rmtree, shim, ignore_errors=True)
    os.mkdir(os.path.join(shim, "mmcv"))
    with open(os.path.join(shim, "mmcv", "__init__.py"), "w", encoding="utf-8") as fh:
        fh.write("from fsm_trainer.mmcv._install import _adopt\n\n_adopt()\n")
    sys.argv = args
    # What ``python script.py`` puts first, in place of ``-m``'s working directory.
    sys.path[:1] = [os.path.dirname(os.path.abspath(args[0]))]
    sys.path.append(shim)
    runpy.run_path(args[0], run_name="__main__")
    # mmcv scripts leave their process group to interpreter shutdown; leave it here, together.
    from fsm_trainer.dist import destroy_dist

    destroy_dist()
    return 0


if __name__ == "__main__":
    sys.exit(main())
