"""Generated functions with real source lines in tracebacks.

The runner specialises a few small functions once per run (a composed hook stage, the
positional state constructor). :func:`define` compiles their source under a unique
``<fsm_trainer ...>`` file name registered with :mod:`linecache`, so a traceback through them
shows the generated line instead of ``File "<string>"``.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Any

_counter = itertools.count()


def define(name: str, source: str, env: dict[str, Any], *, what: str = "generated") -> Any:
    """Compile ``source`` (which defines ``name``) in ``env`` and return that function.

    >>> f = define("twice", "def twice(x):\\n    return 2 * x\\n", {})
    >>> f(4), f.__code__.co_filename.startswith("<fsm_trainer generated")
    (8, True)
    """
    filename = f"<fsm_trainer {what} #{next(_counter)}>"
    lines = source.splitlines(keepends=True)
    # linecache keeps entries whose mtime is None until they are explicitly cleared.
    linecache.cache[filename] = (len(source), None, lines, filename)
    exec(compile(source, filename, "exec"), env)
    return env[name]
