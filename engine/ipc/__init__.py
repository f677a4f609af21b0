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


# --------------------------------------------------------------------------- half-made segments
# A segment is created (shm_open), sized (ftruncate), then its header is written with the
# magic number last. A reader that opens it in between sees an empty segment or a bad
# magic: not an error, the writer is not done yet (or died while creating it).
def segment_not_ready(e: BaseException) -> bool:
    """True for "no such segment yet" and "its creator has not finished its header"."""
    if isinstance(e, FileNotFoundError):
        return True
    if isinstance(e, (RingLayoutError, RegionLayoutError)):
        return "(bad magic)" in str(e)
    return isinstance(e, ValueError) and "is empty" in str(e)


def _unlink(name: str) -> None:
    try:
        import os
        os.unlink("/dev/shm/" + name.lstrip("/"))
    except FileNotFoundError:
        pass


def ring_writer(name: str, dtype, capacity: int) -> tuple[RingWriter, bool]:
    """A restarted writer's ring: its dead predecessor's, taken over (readers keep their
    cursors), else a new one. A segment its creator left half made is made again.
    Returns (writer, took_over)."""
    try:
        return RingWriter.takeover(name, dtype), True
    except (FileNotFoundError, RingLayoutError, ValueError) as e:
        if not segment_not_ready(e):
            raise
        if not isinstance(e, FileNotFoundError):
            _unlink(name)
    return RingWriter.create(name, dtype, capacity), False


def region_of(name: str, dtype, nslots: int) -> tuple[Region, bool]:
    """The region if it exists (a restarted writer's), else a new one; a half-made one is
    made again. Returns (region, existed)."""
    try:
        return Region.attach(name, dtype), True
    except (FileNotFoundError, RegionLayoutError, ValueError) as e:
        if not segment_not_ready(e):
            raise
        if not isinstance(e, FileNotFoundError):
            _unlink(name)
    return Region.create(name, dtype, nslots), False
