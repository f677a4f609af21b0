"""Inter-process transport: shared-memory rings and regions (built in cext/), their names
and lifecycle.

Segments are named ``/cs.<run>.<what>`` so that everything one run created can be found
(and, after a crash, cleaned) by the prefix ``/cs.<run>.``.
"""
import re

from cext.region import Region, RegionLayoutError, RegionTorn  # noqa: F401
from cext.ring import (RingError, RingFull, RingLayoutError, RingOverrun,  # noqa: F401
                       RingReader, RingWriter)
from cext.shm_core import (cleanup_stale, find_segments, pid_alive,  # noqa: F401
                           segment_owner, set_parent_death_signal)

_RUN_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def run_prefix(run: str) -> str:
    """The name prefix of every segment of run ``run``."""
    if not _RUN_RE.match(run):
        raise ValueError(f"run name {run!r} must be 1-32 characters of letters, digits, '_' or '-'")
    return f"/cs.{run}."


def segment_name(run: str, what: str) -> str:
    """``/cs.<run>.<what>``, e.g. segment_name("main", "market")."""
    if not _RUN_RE.match(what):
        raise ValueError(f"segment name {what!r} must be 1-32 characters of letters, digits, '_' or '-'")
    return run_prefix(run) + what
