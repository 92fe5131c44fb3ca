"""Loops compiled by numba on first use, for the few hot kernels of serving and explaining.

numba (which ``shap`` already needs) takes about a second per loop to
compile, so a module wraps its loop with :func:`lazily_compiled` and calls
the result to get the compiled function; ``Explainer.prepare()`` makes the
first calls when a model is loaded, so no request pays for compilation.
The machine code is cached on disk (numba's ``cache=True``: beside the
module, or in the user's cache directory when that is read-only, keyed by
the source file), so later processes load it instead of compiling again: a
one-off ``clearshelf recommend`` or a test run compiles once per install.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_LOOPS: list[tuple[str, list[Any]]] = []  # every wrapped loop: its name and, once compiled, its dispatcher


def lazily_compiled(loop: Callable[..., Any]) -> Callable[[], Callable[..., Any]]:
    """A function that returns ``loop`` compiled (``numba.njit``, no GIL held, cached on disk), compiling it once."""
    compiled: list[Callable[..., Any]] = []
    lock = threading.Lock()
    _LOOPS.append((f"{loop.__module__}.{loop.__qualname__}", compiled))

    def get() -> Callable[..., Any]:
        if not compiled:
            with lock:
                if not compiled:
                    import numba

                    compiled.append(numba.njit(nogil=True, cache=True)(loop))
        return compiled[0]

    return get


def compiled_signatures() -> dict[str, tuple[str, ...]]:
    """The argument types each loop compiled so far was compiled (or loaded from the disk cache) for.

    numba compiles a loop again for every new combination of argument types,
    dtypes and memory layouts; a test compares this before and after serving
    to show that ``Explainer.prepare()`` left no request a compilation to do.
    """
    return {name: tuple(sorted(str(sig) for sig in c[0].signatures)) for name, c in _LOOPS if c}
