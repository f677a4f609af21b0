"""Journal -> PostgreSQL: every record once, idempotent on re-run, the backlog survives an
outage. Needs PostgreSQL (CI has it; skipped with the reason elsewhere)."""
import uuid

import numpy as np
import pytest

from engine import schema
from engine.journal.journal import RK_EXEC, RK_ORDER, RK_REJECT, JournalWriter
from engine.journal.pg import PgUnavailable, PgWriter
from engine.testing.pg import pg_dsn


@pytest.fixture
def dsn():
    return pg_dsn()


@pytest.fixture
def name(dsn):
    n = f"test-{uuid.uuid4().hex[:10]}"
    yield n
    from engine.testing.pg import drop_journal_rows
    drop_journal_rows(dsn, n)


def fill(w, n):
    for i in range(n):
        o = np.zeros(1, schema.ORDER_DTYPE)
        o["client_id"], o["px"], o["qty"], o["score"] = 1000 + i, 600_000 + i, 3, 0.25
        w.append_record(RK_ORDER, o)
        e = np.zeros(1, schema.EXEC_DTYPE)
        e["kind"], e["client_id"], e["px"], e["qty"], e["fee"] = schema.EX_FILL, 1000 + i, 600_000 + i, 3, 0.012
        w.append_record(RK_EXEC, e)
        if i % 10 == 0:
            r = np.zeros(1, schema.REJECT_DTYPE)
            r["client_id"], r["reason"], r["observed"], r["limit"] = 1000 + i, 7, 1.5, 1.0
            w.append_record(RK_REJECT, r)
            w.append_event({"event": "restart", "process": "gateway", "cause": "test", "i": i})


def counts(dsn, name):
    import psycopg
    with psycopg.connect(dsn) as c:
        return {t: c.execute(f"SELECT count(*), count(DISTINCT journal_seq) FROM {t} WHERE journal = %s", (name,)).fetchone()
                for t in ("cs_orders", "cs_execs", "cs_rejects", "cs_events")}


def test_every_record_once_and_idempotent(tmp_path, dsn, name):
    w = JournalWriter(str(tmp_path / "j"), segment_bytes=1 << 16)
    fill(w, 1000)
    w.close()
    pw = PgWriter(dsn, str(tmp_path / "j"), name=name, batch=300)
    assert pw.sync() == 1000 * 2 + 100 * 2
    assert pw.sync() == 0                                      # nothing new
    c = counts(dsn, name)
    assert c == {"cs_orders": (1000, 1000), "cs_execs": (1000, 1000), "cs_rejects": (100, 100), "cs_events": (100, 100)}
    # a writer that died after COPY but before its progress mark: it re-sends, nothing doubles
    pw.conn.execute("UPDATE cs_journal_progress SET last_seq = 0 WHERE journal = %s", (name,))
    assert pw.sync() == 2200
    assert counts(dsn, name) == c
    import psycopg
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT client_id, px, qty, fee, kind FROM cs_execs WHERE journal = %s ORDER BY journal_seq LIMIT 1",
                           (name,)).fetchone()
        assert row == (1000, 600_000, 3, pytest.approx(0.012), schema.EX_FILL)
        ev = conn.execute("SELECT event->>'process' FROM cs_events WHERE journal = %s LIMIT 1", (name,)).fetchone()
        assert ev == ("gateway",)
    pw.close()


def test_a_growing_journal_is_followed_not_rescanned(tmp_path, dsn, name):
    """The journal process syncs every second while the engine appends: each sync reads on
    from the last entry it wrote (across segment rotations), every record still once."""
    w = JournalWriter(str(tmp_path / "j"), segment_bytes=1 << 14)
    pw = PgWriter(dsn, str(tmp_path / "j"), name=name, batch=70)
    total = 0
    for _ in range(4):
        fill(w, 60)
        w.flush()
        total += 60 * 2 + 6 * 2
        assert pw.sync() == 60 * 2 + 6 * 2
        assert pw._at[2] == total                  # where the next sync reads on
    w.close()
    assert pw.sync() == 0
    assert counts(dsn, name) == {"cs_orders": (240, 240), "cs_execs": (240, 240), "cs_rejects": (24, 24),
                                 "cs_events": (24, 24)}
    pw.close()


def test_the_backlog_waits_in_the_journal_while_postgres_is_down(tmp_path, dsn, name):
    j = str(tmp_path / "j")
    w = JournalWriter(j)
    fill(w, 50)
    down = PgWriter("postgresql://postgres@127.0.0.1:1/test", j, name=name)
    with pytest.raises(PgUnavailable):
        down.sync()
    fill(w, 50)                                                # trading goes on, the journal grows
    w.flush()
    up = PgWriter(dsn, j, name=name)
    assert up.sync() == 2 * (100 + 10)
    fill(w, 5)
    w.close()
    assert up.sync() == 2 * 5 + 2
    c = counts(dsn, name)
    assert c["cs_orders"] == (105, 105) and c["cs_execs"] == (105, 105)
    up.close()
