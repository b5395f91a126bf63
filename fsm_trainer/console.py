"""What ``fsm-trainer`` prints while it runs: log lines (or a tqdm bar) on the console, filtered."""

from __future__ import annotations

import logging
import re
import sys

__all__ = ["ConsoleFilter", "console_logger", "use_progress"]


class ConsoleFilter(logging.Filter):
    """What the console shows below DEBUG: one line per log record and per evaluation.

    The hook order (logged when a run starts) and the eval hook's bookkeeping (``Exp name``,
    best-checkpoint messages) are DEBUG-only here; a new best checkpoint is noted on the
    evaluation's line instead. The work dir's log files keep every line.
    """

    _DEBUG_ONLY = ("hooks will be executed in the following order", "Exp name: ", "The previous best checkpoint ")
    _BEST = re.compile(r"^Best .+ is .+ at \d+ (epoch|iter)s?\.?$")

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self.best: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.logger.isEnabledFor(logging.DEBUG) or record.levelno > logging.INFO:
            return True
        msg = record.getMessage()
        if msg.startswith("Now best checkpoint is saved as "):
            self.best = msg.removeprefix("Now best checkpoint is saved as ").rstrip(".")
            return False
        if msg.startswith(self._DEBUG_ONLY) or self._BEST.match(msg):
            return False
        if self.best is not None and msg.startswith(("Epoch(val)", "Iter(val)")):
            record.msg, record.args = f"{msg}\t(new best: {self.best})", None
            self.best = None
        return True


def console_logger(level: str, progress: bool) -> logging.Logger:
    """The ``fsm_trainer`` logger at ``level``, printing to stdout through :class:`ConsoleFilter`
    (through tqdm, above its bar, when ``progress``)."""
    logger = logging.getLogger("fsm_trainer")
    logger.setLevel(level)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if progress:
        from tqdm import tqdm

        class TqdmHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                tqdm.write(self.format(record), file=sys.stdout)

        handler: logging.Handler = TqdmHandler()
        # The bar shows the train values and prints val/eval records: drop the text logger's
        # copies from the console (they still go to the work dir's .log file).
        copies = ("Epoch [", "Iter [", "Epoch(", "Iter(", "Exp name:")
        handler.addFilter(lambda r: not r.getMessage().startswith(copies))
    else:
        handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(ConsoleFilter(logger))
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
    logger.addHandler(handler)
    return logger


def use_progress(flag: str) -> bool:
    """``--progress auto|on|off``: a bar on a terminal only, for ``auto``."""
    if flag == "auto":
        return sys.stderr.isatty()
    return flag == "on"
