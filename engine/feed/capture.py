"""Capture files: one raw frame per line, ``<local receive ns> <frame>\\n``, gzip-compressed.

This is the format of the Binance captures in ``../shared/data/nkaz001__hftbacktest/``
(written by hftbacktest's collector) and of our own recordings (``cryptoscalp record``),
so one reader serves both. Our recorder uses the wall clock (CLOCK_REALTIME ns) for the
stamp, as theirs does; the REST depth snapshot is stored as a line without a stream
wrapper.
"""
from __future__ import annotations

import gzip
import io
import os
from typing import BinaryIO, Iterator


class CaptureError(ValueError):
    """A capture line that is not ``<integer ns> <frame>``."""


def open_capture(path: str) -> BinaryIO:
    """Open a capture for reading: gzip if the file starts with the gzip magic, else plain."""
    f = open(path, "rb")
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    return f


def iter_capture(path: str) -> Iterator[tuple[int, bytes]]:
    """(local_ns, frame) for every non-empty line, in file order."""
    with open_capture(path) as f:
        for lineno, line in enumerate(io.BufferedReader(f, 1 << 20), 1):  # type: ignore[arg-type]
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            sp = line.find(b" ")
            if sp <= 0:
                raise CaptureError(f"{path}:{lineno}: expected '<ns> <frame>', got {line[:60]!r}")
            try:
                ts = int(line[:sp])
            except ValueError:
                raise CaptureError(f"{path}:{lineno}: timestamp {line[:sp][:30]!r} is not an integer") from None
            yield ts, line[sp + 1:]


def load_capture(path: str) -> list[tuple[int, bytes]]:
    """The whole capture in memory (benchmarks and backtests: no I/O in the timed loop)."""
    return list(iter_capture(path))


class CaptureWriter:
    """Append frames to a gzip capture; ``flush()`` makes what was written readable.

    Frames must not contain a newline (exchange JSON frames never do)."""

    def __init__(self, path: str, compresslevel: int = 6):
        self.path = path
        self._raw = open(path, "ab")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="ab", compresslevel=compresslevel)
        self.frames = 0
        self.bytes = 0

    def write(self, local_ns: int, frame: bytes) -> None:
        if b"\n" in frame:
            raise CaptureError("a frame with a newline cannot be stored one per line")
        self._gz.write(b"%d %s\n" % (local_ns, frame))
        self.frames += 1
        self.bytes += len(frame)

    def flush(self) -> None:
        self._gz.flush()
        self._raw.flush()
        os.fsync(self._raw.fileno())

    def close(self) -> None:
        self._gz.close()
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
