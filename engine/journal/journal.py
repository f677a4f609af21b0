"""The append-only journal: every record that crosses a ring (or, fused, a function call),
in memory-mapped segment files, each record checksummed.

Layout. A journal is a directory of segments ``seg-000001.jnl``, ``seg-000002.jnl``, ...
each ``segment_bytes`` long (default 64 MiB), created full-size and mapped. A segment
starts with a 32-byte header (magic ``CSJOURN1``, segment number, first sequence number),
then records, each:

    offset  size  field
    0       4     length of the payload (bytes)
    4       2     kind (RK_MARKET, RK_ORDER, RK_REJECT, RK_EXEC: the record layouts of
                  engine.schema; RK_EVENT: a JSON object, e.g. a restart or a decision)
    6       2     0xC5C5 (record marker)
    8       8     sequence number (1, 2, ... over the whole journal)
    16      8     wall time of the append (ns)
    24      4     CRC-32 of the header (this field zero) and the payload
    28      4     reserved (0)
    32      n     payload, then zero padding to a multiple of 8

A length of zero ends the written part of a segment. A record that does not fit closes
the segment (the rest stays zero) and opens the next one: rotation.

Crash safety. The payload and header are written before the length (the length word is
written last), so a reader never sees a record whose bytes are still being written; a
writer that died mid-record leaves a zero length (or a record whose CRC does not match,
if the page was partly flushed): readers stop there and report it, and a new writer
``open``s the journal at the last valid record and continues the sequence. ``flush()``
msyncs (the writer calls it every ``flush_every`` records and on close).
"""
from __future__ import annotations

import mmap
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np

from engine import schema

MAGIC = b"CSJOURN1"
SEG_HEADER = struct.Struct("<8sQQQ")          # magic, segment number, first seq, reserved
REC_HEADER = struct.Struct("<IHHQQII")         # length, kind, marker, seq, wall ns, crc, reserved
MARKER = 0xC5C5
RK_MARKET, RK_ORDER, RK_REJECT, RK_EXEC, RK_EVENT = 1, 2, 3, 4, 5
KIND_NAMES = {RK_MARKET: "market", RK_ORDER: "order", RK_REJECT: "reject", RK_EXEC: "exec", RK_EVENT: "event"}
DTYPES = {RK_MARKET: schema.MARKET_DTYPE, RK_ORDER: schema.ORDER_DTYPE, RK_REJECT: schema.REJECT_DTYPE,
          RK_EXEC: schema.EXEC_DTYPE}
_SEG_RE = re.compile(r"^seg-(\d{6,})\.jnl$")


class JournalError(ValueError):
    pass


@dataclass
class Entry:
    seq: int
    kind: int
    wall_ns: int
    payload: bytes
    segment: int
    offset: int

    def record(self):
        """The numpy record (RK_MARKET..RK_EXEC) or the dict (RK_EVENT)."""
        if self.kind == RK_EVENT:
            import orjson
            return orjson.loads(self.payload)
        return np.frombuffer(self.payload, DTYPES[self.kind])[0]


def _crc(header_wo_crc: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(header_wo_crc)) & 0xFFFFFFFF


def segments(path: str) -> list[tuple[int, str]]:
    if not os.path.isdir(path):
        return []
    out = []
    for name in os.listdir(path):
        m = _SEG_RE.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(path, name)))
    return sorted(out)


def _scan(buf, seg_no: int, start: int = SEG_HEADER.size):
    """Yield (Entry) from a mapped segment until the end of its written part; on a torn
    or corrupt record, yield a JournalError instead and stop."""
    off = start
    n = len(buf)
    while off + REC_HEADER.size <= n:
        length, kind, marker, seq, wall, crc, _ = REC_HEADER.unpack_from(buf, off)
        if length == 0:
            return
        end = off + REC_HEADER.size + length
        if marker != MARKER or end > n:
            yield JournalError(f"segment {seg_no} offset {off}: bad record header (marker {marker:#x}, length {length})")
            return
        payload = bytes(buf[off + REC_HEADER.size:end])
        hdr = bytearray(buf[off:off + REC_HEADER.size])
        hdr[24:28] = b"\0\0\0\0"
        if _crc(bytes(hdr), payload) != crc:
            yield JournalError(f"segment {seg_no} offset {off}: checksum mismatch (seq {seq})")
            return
        yield Entry(seq, kind, wall, payload, seg_no, off)
        off = (end + 7) & ~7


class JournalWriter:
    """Appends records; one writer per journal directory (the journal process)."""

    def __init__(self, path: str, segment_bytes: int = 64 << 20, flush_every: int = 1024):
        if segment_bytes < 4096:
            raise ValueError("segment_bytes must be >= 4096")
        self.path = path
        self.segment_bytes = segment_bytes
        self.flush_every = flush_every
        os.makedirs(path, exist_ok=True)
        self.seq = 0
        self.recovered_torn = 0
        self._mm = None
        self._f = None
        segs = segments(path)
        if segs:
            no, p = segs[-1]
            self._map(p)
            self.seg_no = no
            _, _, first, _ = SEG_HEADER.unpack_from(self._mm, 0)
            self.off = SEG_HEADER.size
            self.seq = first - 1
            for e in _scan(self._mm, no):
                if isinstance(e, JournalError):
                    # a torn tail from a crash: cut it (zero it) and continue after the last good record
                    self.recovered_torn += 1
                    self._mm[self.off:] = b"\0" * (len(self._mm) - self.off)
                    break
                self.seq = e.seq
                self.off = (e.offset + REC_HEADER.size + len(e.payload) + 7) & ~7
            if self.seq == first - 1 and len(segs) > 1:
                # an empty last segment: the sequence continues from the one before
                for e in JournalReader(path).entries(from_segment=segs[-2][0]):
                    self.seq = e.seq
        else:
            self.seg_no = 0
            self._new_segment()
        self.appended = 0

    def _map(self, p: str) -> None:
        if self._mm is not None:
            self._mm.flush()
            self._mm.close()
            self._f.close()
        self._f = open(p, "r+b")
        self._mm = mmap.mmap(self._f.fileno(), 0)

    def _new_segment(self) -> None:
        self.seg_no += 1
        p = os.path.join(self.path, f"seg-{self.seg_no:06d}.jnl")
        with open(p, "wb") as f:
            f.truncate(self.segment_bytes)
        self._map(p)
        SEG_HEADER.pack_into(self._mm, 0, MAGIC, self.seg_no, self.seq + 1, 0)
        self.off = SEG_HEADER.size

    def append(self, kind: int, payload: bytes, wall_ns: int | None = None) -> int:
        """Append one record; returns its sequence number."""
        n = len(payload)
        if n == 0:
            raise JournalError("empty payload")
        need = REC_HEADER.size + ((n + 7) & ~7)
        if need > self.segment_bytes - SEG_HEADER.size:
            raise JournalError(f"record of {n} bytes does not fit a {self.segment_bytes}-byte segment")
        if self.off + need > self.segment_bytes:
            self._mm.flush()
            self._new_segment()
        self.seq += 1
        wall = time.time_ns() if wall_ns is None else wall_ns
        hdr = bytearray(REC_HEADER.pack(n, kind, MARKER, self.seq, wall, 0, 0))
        crc = _crc(bytes(hdr), payload)
        struct.pack_into("<I", hdr, 24, crc)
        o = self.off
        self._mm[o + REC_HEADER.size:o + REC_HEADER.size + n] = payload
        self._mm[o + 4:o + REC_HEADER.size] = hdr[4:]
        self._mm[o:o + 4] = hdr[:4]                 # the length last: the record is now visible
        self.off = (o + need + 7) & ~7
        self.appended += 1
        if self.flush_every and self.appended % self.flush_every == 0:
            self._mm.flush()
        return self.seq

    def append_record(self, kind: int, rec) -> int:
        """A numpy record (or 1-element array) of the kind's dtype."""
        a = np.asarray(rec)
        if a.dtype != DTYPES[kind]:
            raise JournalError(f"{KIND_NAMES[kind]} record must have dtype {DTYPES[kind]}, not {a.dtype}")
        return self.append(kind, a.tobytes())

    def append_event(self, event: dict) -> int:
        import orjson
        return self.append(RK_EVENT, orjson.dumps(event))

    def flush(self) -> None:
        self._mm.flush()

    def close(self) -> None:
        if self._mm is not None:
            self._mm.flush()
            self._mm.close()
            self._f.close()
            self._mm = None


class JournalReader:
    """Reads a journal (also while a writer appends to it)."""

    def __init__(self, path: str):
        self.path = path
        self.errors: list[str] = []

    def entries(self, from_seq: int = 1, from_segment: int = 0, from_offset: int = 0):
        """Entries with ``seq >= from_seq``, in order. ``from_segment`` / ``from_offset``:
        where to start reading (an entry's ``segment`` and ``offset``, for a reader that
        follows a growing journal without rescanning it); entries before that are not read."""
        self.errors = []
        segs = segments(self.path)
        for i, (no, p) in enumerate(segs):
            if no < from_segment:
                continue
            if i + 1 < len(segs) and from_seq > 1:
                with open(segs[i + 1][1], "rb") as f:
                    nxt = SEG_HEADER.unpack(f.read(SEG_HEADER.size))
                if nxt[2] <= from_seq:
                    continue                        # everything wanted starts in a later segment
            with open(p, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                try:
                    magic, seg_no, first, _ = SEG_HEADER.unpack_from(mm, 0)
                    if magic != MAGIC:
                        self.errors.append(f"{p}: not a journal segment")
                        return
                    start = from_offset if (no == from_segment and from_offset) else SEG_HEADER.size
                    for e in _scan(mm, no, start):
                        if isinstance(e, JournalError):
                            self.errors.append(str(e))
                            return
                        if e.seq >= from_seq:
                            yield e
                finally:
                    mm.close()

    def last_seq(self) -> int:
        last = 0
        for e in self.entries():
            last = e.seq
        return last
