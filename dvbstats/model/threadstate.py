"""Python thread states that last as long as a foreign thread (nutpie's samplers' worker threads).

nutpie samples a Python log density (:func:`dvbstats.model.fastlogp.pyfunc_model`) from its own
worker threads, which Python did not start. Each call into Python from such a thread creates a
thread state and deletes it on return (``PyGILState_Ensure`` / ``PyGILState_Release``), and with it
maps and unmaps a fresh 16 KB frame stack: per gradient an ``mmap``, a ``munmap`` and the TLB flush
it sends to the other core. At published scale (44,000 gradients) that was 0.9-1.1 s of the
sampler's 9.2 CPU s (``strace`` counted one ``mmap`` per gradient per worker; ``benchmarks/bench_speed.py``
has the run's figures). One ``PyGILState_Ensure`` per thread that is never released keeps the state
(and its frame stack) until the thread ends; the GIL is still released between calls as before.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

F = TypeVar("F", bound=Callable)
_thread = threading.local()


def kept(function: F) -> F:
    """``function``, keeping the Python state of each thread that calls it from its first call on."""

    @wraps(function)
    def call(*args, **kwargs):
        if not getattr(_thread, "kept", False):
            ctypes.pythonapi.PyGILState_Ensure()  # never released: the state outlives this call
            _thread.kept = True
        return function(*args, **kwargs)

    return call  # type: ignore[return-value]
