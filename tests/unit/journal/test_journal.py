"""The journal: round trip, rotation, checksums, a torn tail after a crash, reading while
another process writes."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from engine import schema
from engine.journal.journal import (REC_HEADER, RK_EVENT, RK_EXEC, RK_ORDER, JournalError, JournalReader,
                                    JournalWriter, segments)


def order(cid):
    o = np.zeros(1, schema.ORDER_DTYPE)
    o["client_id"], o["px"], o["qty"], o["action"] = cid, 600_000 + cid, 1, schema.ACT_NEW
    return o


def test_round_trip_kinds_and_sequence(tmp_path):
    w = JournalWriter(str(tmp_path))
    for i in range(100):
        assert w.append_record(RK_ORDER, order(i)) == 2 * i + 1
        assert w.append_event({"event": "decision", "i": i}) == 2 * i + 2
    w.close()
    got = list(JournalReader(str(tmp_path)).entries())
    assert [e.seq for e in got] == list(range(1, 201))
    assert [int(e.record()["client_id"]) for e in got if e.kind == RK_ORDER] == list(range(100))
    assert [e.record()["i"] for e in got if e.kind == RK_EVENT] == list(range(100))
    with pytest.raises(JournalError, match="dtype"):
        JournalWriter(str(tmp_path / "x")).append_record(RK_EXEC, order(1))


def test_rotation_keeps_the_sequence_and_every_record(tmp_path):
    w = JournalWriter(str(tmp_path), segment_bytes=8192)
    for i in range(500):
        w.append_record(RK_ORDER, order(i))
    w.close()
    assert len(segments(str(tmp_path))) > 5
    got = list(JournalReader(str(tmp_path)).entries())
    assert [e.seq for e in got] == list(range(1, 501))
    assert [e.seq for e in JournalReader(str(tmp_path)).entries(from_seq=377)] == list(range(377, 501))
    # a follower reads on from an entry's place (segment, offset) instead of rescanning
    at = got[300]
    assert at.segment > 1
    tail = JournalReader(str(tmp_path)).entries(from_seq=at.seq + 1, from_segment=at.segment, from_offset=at.offset)
    assert [e.seq for e in tail] == list(range(at.seq + 1, 501))


def test_a_reopened_writer_continues_the_sequence(tmp_path):
    w = JournalWriter(str(tmp_path), segment_bytes=8192)
    for i in range(130):
        w.append_record(RK_ORDER, order(i))
    w.close()
    w = JournalWriter(str(tmp_path), segment_bytes=8192)
    assert w.seq == 130
    assert w.append_event({"event": "restart"}) == 131
    w.close()
    assert JournalReader(str(tmp_path)).last_seq() == 131


def test_a_torn_tail_is_detected_and_cut_on_reopen(tmp_path):
    w = JournalWriter(str(tmp_path))
    for i in range(10):
        w.append_record(RK_ORDER, order(i))
    off = w.off
    w.close()
    # a crash mid-record: a header and half a payload, as if the process died there
    _, p = segments(str(tmp_path))[-1]
    with open(p, "r+b") as f:
        f.seek(off)
        f.write(REC_HEADER.pack(128, RK_ORDER, 0xC5C5, 11, 0, 12345, 0) + b"\1" * 40)
    r = JournalReader(str(tmp_path))
    assert [e.seq for e in r.entries()] == list(range(1, 11))
    assert r.errors and "checksum" in r.errors[0]
    w = JournalWriter(str(tmp_path))
    assert w.recovered_torn == 1 and w.seq == 10
    w.append_record(RK_ORDER, order(99))
    w.close()
    r = JournalReader(str(tmp_path))
    assert [e.seq for e in r.entries()] == list(range(1, 12)) and not r.errors


def test_a_flipped_bit_is_a_checksum_error(tmp_path):
    w = JournalWriter(str(tmp_path))
    for i in range(5):
        w.append_record(RK_ORDER, order(i))
    w.close()
    _, p = segments(str(tmp_path))[-1]
    with open(p, "r+b") as f:
        f.seek(32 + 32 + 8)                 # inside the first record's payload
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 1]))
    r = JournalReader(str(tmp_path))
    assert list(r.entries()) == []
    assert "checksum mismatch (seq 1)" in r.errors[0]


def test_read_while_another_process_writes(tmp_path):
    code = (f"import numpy as np, sys; sys.path.insert(0, {os.getcwd()!r});"
            "from engine.journal.journal import JournalWriter, RK_EVENT;"
            f"w = JournalWriter({str(tmp_path)!r}, segment_bytes=1 << 16, flush_every=0);"
            "[w.append_event({'i': i}) for i in range(20000)]; w.close()")
    p = subprocess.Popen([sys.executable, "-c", code])
    seen = 0
    while p.poll() is None:
        seqs = [e.seq for e in JournalReader(str(tmp_path)).entries()]
        assert seqs == list(range(1, len(seqs) + 1))         # a prefix, never a hole or a torn record
        seen = max(seen, len(seqs))
    assert p.wait() == 0
    assert [e.seq for e in JournalReader(str(tmp_path)).entries()] == list(range(1, 20001))
