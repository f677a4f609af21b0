"""Per-process heartbeats in a shared region (HEARTBEAT_DTYPE, one slot per role).

The process that owns the group (the engine in the split topologies) creates the region;
every process beats into its own slot (pid, CLOCK_MONOTONIC of the beat, state, events and
errors counted). The owner reads the table to tell a live process from a dead or a hung
one, and ``cryptoscalp admin status`` reports it.

A process that attaches (the engine's children) also speaks systemd's notify protocol
from its beats when it runs under a Type=notify unit (``NOTIFY_SOCKET`` set): READY=1 at
its first beat, WATCHDOG=1 at most once a second after that, STOPPING=1 with its last.
So a unit's watchdog is fed by the same loop that feeds the engine's watch.
"""
from __future__ import annotations

import os
import time

import numpy as np

from cext.region import Region
from engine import schema

ROLES = ("engine", "feed", "brain", "risk", "gateway", "journal")


class Heartbeats:
    def __init__(self, region: Region, notify: bool = False):
        self.region = region
        self._rec = np.zeros(1, schema.HEARTBEAT_DTYPE)
        self._started = time.time_ns()
        self.notify = notify and bool(os.environ.get("NOTIFY_SOCKET"))
        self._notified = 0.0

    @classmethod
    def create(cls, name: str) -> "Heartbeats":
        return cls(Region.create(name, schema.HEARTBEAT_DTYPE, len(ROLES)))

    @classmethod
    def attach(cls, name: str, notify: bool = True) -> "Heartbeats":
        return cls(Region.attach(name, schema.HEARTBEAT_DTYPE), notify=notify)

    def beat(self, role: str, events: int = 0, errors: int = 0, state: int = schema.PS_READY) -> None:
        r = self._rec
        r["pid"], r["heartbeat_ns"], r["state"] = os.getpid(), time.monotonic_ns(), state
        r["role"], r["events"], r["errors"] = ROLES.index(role), events, errors
        r["started_ns"], r["name"] = self._started, role.encode()
        self.region.write(ROLES.index(role), r)
        if self.notify:
            self._sd(state)

    def _sd(self, state: int) -> None:
        from engine.telemetry import sd_notify
        now = time.monotonic()
        if state == schema.PS_STOPPED:
            sd_notify("STOPPING=1")
        elif not self._notified:
            sd_notify("READY=1")
        elif now - self._notified >= 1.0:
            sd_notify("WATCHDOG=1")
        else:
            return
        self._notified = now

    def read(self, role: str) -> dict | None:
        """The role's last beat, or None if it never beat."""
        out = np.zeros(1, schema.HEARTBEAT_DTYPE)
        self.region.read(ROLES.index(role), out)
        if not out["heartbeat_ns"][0]:
            return None
        return {"name": role, "pid": int(out["pid"][0]), "state": int(out["state"][0]),
                "events": int(out["events"][0]), "errors": int(out["errors"][0]),
                "age_s": (time.monotonic_ns() - int(out["heartbeat_ns"][0])) / 1e9}

    def close(self) -> None:
        self.region.close()

    def unlink(self) -> None:
        self.region.unlink()
