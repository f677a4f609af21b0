"""`cryptoscalp run --pg DSN`: the journal process copies the journal into PostgreSQL while
the engine trades. PostgreSQL is unreachable when the run starts (a proxy port with nothing
behind it yet) and comes back mid-run: the backlog waits in the journal, is written when
the database returns, and at the stop PostgreSQL holds every journal record once."""
import json
import os
import socket
import subprocess
import threading
import time
from urllib.parse import urlparse

from test_kill9 import CLI, Lines, entries, kill, show, wait_for

from engine.journal.journal import RK_ORDER
from engine.testing.pg import assert_pg_holds_journal, drop_journal_rows, pg_dsn


class Proxy:
    """TCP port -> PostgreSQL, opened on demand (before ``open()`` the port refuses)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()                                 # nothing listens there until open()
        self.srv = None

    def open(self):
        self.srv = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        if self.srv is not None:
            self.srv.close()


def test_journal_process_writes_the_backlog_when_postgres_returns(tmp_path):
    dsn = pg_dsn()
    u = urlparse(dsn)
    proxy = Proxy((u.hostname or "127.0.0.1", u.port or 5432))
    via_proxy = dsn.replace(u.netloc, f"{u.username + '@' if u.username else ''}127.0.0.1:{proxy.port}")
    name = f"e2e-journal-{os.getpid()}-{time.time_ns()}"
    j = str(tmp_path / "journal")
    eng = out = None
    try:
        eng = subprocess.Popen([CLI, "run", "--seconds", "30", "--speed", "10", "--journal", j, "--seed", "8",
                                "--admin", "none", "--metrics-port", "-1", "--log-format", "text",
                                "--pg", via_proxy, "--pg-name", name],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = Lines(eng.stdout)
        wait_for(lambda: any("PostgreSQL unavailable" in x for x in out.lines), 60, "the writer to find PostgreSQL down")
        wait_for(lambda: len([e for e in entries(j) if e.kind == RK_ORDER]) >= 5, 120, "orders while it is down")
        proxy.open()                                                   # PostgreSQL is back
        wait_for(lambda: any("PostgreSQL back after" in x for x in out.lines), 60, "the backlog to be written")
        assert eng.wait(120) == 0, out.tail(60)
        final = json.loads(out.lines[-1])
        assert final["postgres"]["journal"] == name and final["postgres"]["outages"] == 1
        es = entries(j)
        assert es[-1].record() == {"event": "process_stopped", "process": "journal", "rc": 0}
        assert_pg_holds_journal(dsn, name, es)
    except BaseException:
        show(out=out, n=120)
        raise
    finally:
        kill(eng)
        proxy.close()
        drop_journal_rows(dsn, name)
