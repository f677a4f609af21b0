"""Journal -> PostgreSQL: schema migrations, COPY in batches, idempotent on restart, the
backlog kept in the journal while the database is away.

Tables (created by the migrations, version in ``cs_schema_migrations``):
``cs_orders``, ``cs_rejects``, ``cs_execs`` (one column per field of the record layout in
engine.schema, plus ``journal``, ``journal_seq`` and ``journal_ns``), ``cs_events`` (journal, journal_seq, journal_ns, event jsonb),
``cs_market`` (market records; the journal may sample them) and ``cs_journal_progress``
(the last journal sequence number written, per journal name).

Idempotent: every row's primary key is (journal name, journal sequence number:
``journal_seq``); a batch goes by COPY
into a temporary table, then ``INSERT ... ON CONFLICT DO NOTHING``, and the progress
row moves in the same transaction. A writer killed anywhere re-sends at most one batch,
which the conflict clause drops: journal = PostgreSQL rows, no duplicate.
Backlog: ``sync()`` writes everything after the progress mark; if PostgreSQL is down it
raises ``PgUnavailable`` and nothing is lost: the next ``sync()`` starts from the same mark.
"""
from __future__ import annotations

import numpy as np

from engine import schema
from engine.journal.journal import DTYPES, RK_EVENT, RK_EXEC, RK_MARKET, RK_ORDER, RK_REJECT, JournalReader

TABLES = {RK_ORDER: "cs_orders", RK_REJECT: "cs_rejects", RK_EXEC: "cs_execs", RK_MARKET: "cs_market"}


class PgUnavailable(RuntimeError):
    pass


def _sqltype(dt: np.dtype) -> str:
    if dt.kind == "f":
        return "double precision"
    if dt.kind in "iu":
        return "smallint" if dt.itemsize == 1 else ("integer" if dt.itemsize == 2 else "bigint")
    if dt.kind == "b":
        return "boolean"
    raise TypeError(f"no SQL type for {dt}")


def _columns(dtype: np.dtype) -> list[tuple[str, str]]:
    return [(n, _sqltype(dtype.fields[n][0])) for n in dtype.names if not n.startswith("_")]


def _create(kind: int) -> str:
    cols = ",\n  ".join(f'"{n}" {t}' for n, t in _columns(DTYPES[kind]))
    return (f"CREATE TABLE IF NOT EXISTS {TABLES[kind]} (\n  journal text NOT NULL,\n  journal_seq bigint NOT NULL,\n"
            f"  journal_ns bigint NOT NULL,\n  {cols},\n  PRIMARY KEY (journal, journal_seq))")


MIGRATIONS = [
    (1, [
        "CREATE TABLE IF NOT EXISTS cs_journal_progress (journal text PRIMARY KEY, last_seq bigint NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now())",
        _create(RK_ORDER), _create(RK_REJECT), _create(RK_EXEC), _create(RK_MARKET),
        "CREATE TABLE IF NOT EXISTS cs_events (journal text NOT NULL, journal_seq bigint NOT NULL, "
        "journal_ns bigint NOT NULL, event jsonb NOT NULL, PRIMARY KEY (journal, journal_seq))",
        "CREATE INDEX IF NOT EXISTS cs_execs_client_id ON cs_execs (client_id)",
        "CREATE INDEX IF NOT EXISTS cs_orders_client_id ON cs_orders (client_id)",
    ]),
]


def migrate(conn) -> int:
    """Apply the migrations not yet applied; returns the schema version."""
    with conn.transaction():
        conn.execute("CREATE TABLE IF NOT EXISTS cs_schema_migrations (version integer PRIMARY KEY, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("SELECT pg_advisory_xact_lock(7305157)")          # one migrator at a time
        done = {r[0] for r in conn.execute("SELECT version FROM cs_schema_migrations")}
        for version, stmts in MIGRATIONS:
            if version in done:
                continue
            for s in stmts:
                conn.execute(s)
            conn.execute("INSERT INTO cs_schema_migrations (version) VALUES (%s)", (version,))
    return max(v for v, _ in MIGRATIONS)


class PgWriter:
    def __init__(self, dsn: str, journal_path: str, name: str = "main", batch: int = 5000):
        self.dsn, self.journal_path, self.name, self.batch = dsn, journal_path, name, batch
        self.conn = None
        self.written = 0
        self._at = None             # (segment, offset, seq) of the last entry written: where the next sync reads on

    def connect(self):
        import psycopg
        if self.conn is None or self.conn.closed:
            try:
                self.conn = psycopg.connect(self.dsn, connect_timeout=5, autocommit=True)
            except psycopg.OperationalError as e:
                raise PgUnavailable(f"PostgreSQL at {self.dsn}: {e}") from e
            migrate(self.conn)
        return self.conn

    def progress(self) -> int:
        r = self.connect().execute("SELECT last_seq FROM cs_journal_progress WHERE journal = %s", (self.name,)).fetchone()
        return r[0] if r else 0

    def _flush(self, conn, rows: dict, last_seq: int) -> None:
        import orjson
        with conn.transaction():
            for kind, recs in rows.items():
                if not recs:
                    continue
                if kind == RK_EVENT:
                    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _cs_ev (LIKE cs_events) ON COMMIT DELETE ROWS")
                    with conn.cursor().copy("COPY _cs_ev (journal, journal_seq, journal_ns, event) FROM STDIN") as cp:
                        for seq, wall, payload in recs:
                            cp.write_row((self.name, seq, wall, payload.decode()))
                    conn.execute("INSERT INTO cs_events SELECT * FROM _cs_ev ON CONFLICT (journal, journal_seq) DO NOTHING")
                    continue
                table = TABLES[kind]
                cols = [n for n, _ in _columns(DTYPES[kind])]
                tmp = f"_cs_{table}"
                conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {table}) ON COMMIT DELETE ROWS")
                collist = ", ".join(["journal", "journal_seq", "journal_ns"] + [f'"{c}"' for c in cols])
                arr = np.frombuffer(b"".join(p for _, _, p in recs), DTYPES[kind])
                with conn.cursor().copy(f"COPY {tmp} ({collist}) FROM STDIN") as cp:
                    for (seq, wall, _), rec in zip(recs, arr):
                        cp.write_row((self.name, seq, wall, *[_py(rec[c]) for c in cols]))
                conn.execute(f"INSERT INTO {table} ({collist}) SELECT {collist} FROM {tmp} "
                             f"ON CONFLICT (journal, journal_seq) DO NOTHING")
            conn.execute("INSERT INTO cs_journal_progress (journal, last_seq) VALUES (%s, %s) ON CONFLICT (journal) "
                         "DO UPDATE SET last_seq = GREATEST(cs_journal_progress.last_seq, EXCLUDED.last_seq), "
                         "updated_at = now()", (self.name, last_seq))

    def sync(self) -> int:
        """Write every journal record after the progress mark; returns how many were sent."""
        import psycopg
        try:
            conn = self.connect()
            start = self.progress() + 1
            sent = 0
            rows: dict[int, list] = {}
            n = 0
            last = start - 1
            at = {}                    # a long-lived writer reads on from its last entry, not from the start
            if self._at is not None and self._at[2] < start:
                at = {"from_segment": self._at[0], "from_offset": self._at[1]}
            e_last = None
            for e in JournalReader(self.journal_path).entries(from_seq=start, **at):
                rows.setdefault(e.kind, []).append((e.seq, e.wall_ns, e.payload))
                n += 1
                last = e.seq
                e_last = e
                if n >= self.batch:
                    self._flush(conn, rows, last)
                    self._at = (e.segment, e.offset, e.seq)
                    sent += n
                    rows, n = {}, 0
            if n:
                self._flush(conn, rows, last)
                self._at = (e_last.segment, e_last.offset, e_last.seq)
                sent += n
            self.written += sent
            return sent
        except psycopg.OperationalError as e:
            if self.conn is not None:
                try:
                    self.conn.close()
                except Exception:
                    pass
            self.conn = None
            raise PgUnavailable(str(e)) from e

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _py(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


__all__ = ["PgWriter", "PgUnavailable", "migrate", "MIGRATIONS", "schema"]
