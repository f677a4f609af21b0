"""Per-process heartbeats in a shared region (HEARTBEAT_DTYPE, one slot per role).

The process that owns the group (the engine in the split topologies) creates the region;
every process beats into its own slot (pid, CLOCK_MONOTONIC of the beat, state, events and
errors counted). The owner reads the table to tell a live process from a dead or a hung
one, and ``cryptoscalp admin status`` reports it.
"""
from __future__ import annotations

import os
import time

import numpy as np

from cext.region import Region
from engine import schema

ROLES = ("engine", "feed", "brain", "risk", "gateway", "journal")


class Heartbeats:
    def __init__(self, region: Region):
        self.region = region
        self._rec = np.zeros(1, schema.HEARTBEAT_DTYPE)
        self._started = time.time_ns()

    @classmethod
    def create(cls, name: str) -> "Heartbeats":
        return cls(Region.create(name, schema.HEARTBEAT_DTYPE, len(ROLES)))

    @classmethod
    def attach(cls, name: str) -> "Heartbeats":
        return cls(Region.attach(name, schema.HEARTBEAT_DTYPE))

    def beat(self, role: str, events: int = 0, errors: int = 0, state: int = schema.PS_READY) -> None:
        r = self._rec
        r["pid"], r["heartbeat_ns"], r["state"] = os.getpid(), time.monotonic_ns(), state
        r["role"], r["events"], r["errors"] = ROLES.index(role), events, errors
        r["started_ns"], r["name"] = self._started, role.encode()
        self.region.write(ROLES.index(role), r)

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
