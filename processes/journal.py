"""The journal process: copies the engine's journal into PostgreSQL while it is written
(engine.journal.pg.PgWriter: migrations, COPY, idempotent), once every ``--every-s``;
a heartbeat in the group's ``procs`` region every 200 ms (events: rows written, errors:
outages).

Started by the engine that owns the group when it runs with ``--pg DSN``, never by hand:
it dies with its parent (PR_SET_PDEATHSIG), the engine restarts it when it dies or hangs.
PostgreSQL down is not an error of this process: the backlog waits in the journal (the
progress mark stays where it was), the outage is logged once, retried with a doubling
back-off up to 30 s, and written when the database is back. SIGTERM: one last copy (the
engine flushed the journal before stopping it), then exit.

    python -m processes.journal --run NAME --journal DIR --dsn DSN --name NAME [--every-s 1]
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from processes import child_args

log = logging.getLogger("cryptoscalp.journal")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="processes.journal")
    ap.add_argument("--run", required=True, help="segment name prefix of the group (/cs.<run>.*)")
    ap.add_argument("--journal", required=True, help="the journal directory")
    ap.add_argument("--dsn", required=True, help="PostgreSQL DSN")
    ap.add_argument("--name", required=True, help="the journal's name in PostgreSQL (the rows' `journal` column)")
    ap.add_argument("--every-s", type=float, default=1.0)
    return run(child_args(ap, argv))


def run(args) -> int:
    from engine import schema
    from engine.feed.ringfeed import segments
    from engine.ipc.heartbeat import Heartbeats
    from engine.journal.pg import PgUnavailable, PgWriter

    hb = Heartbeats.attach(segments(args.run)[2])
    pg = PgWriter(args.dsn, args.journal, name=args.name)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    outages = 0
    down_since = None
    delay = args.every_s
    next_sync = 0.0
    log.info("journal writer up: %s -> PostgreSQL as %r", args.journal, args.name, extra={"pid": os.getpid()})

    def sync_once() -> None:
        nonlocal outages, down_since, delay
        try:
            n = pg.sync()
        except PgUnavailable as e:
            if down_since is None:
                down_since = time.monotonic()
                outages += 1
                log.warning("PostgreSQL unavailable (the backlog waits in the journal): %s", e)
            delay = min(30.0, delay * 2)
            return
        if down_since is not None:
            log.info("PostgreSQL back after %.1f s: backlog written", time.monotonic() - down_since,
                     extra={"rows": n})
            down_since = None
        delay = args.every_s

    while not stop:
        now = time.monotonic()
        if now >= next_sync:
            sync_once()
            next_sync = time.monotonic() + delay
        hb.beat("journal", events=pg.written, errors=outages)
        time.sleep(0.2)
    sync_once()                                      # the tail the engine flushed before stopping us
    hb.beat("journal", events=pg.written, errors=outages, state=schema.PS_STOPPED)
    log.info("journal writer stopped: %d rows written this run, %d outages", pg.written, outages,
             extra={"rows": pg.written, "outages": outages, "pg_down": down_since is not None})
    pg.close()
    hb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
