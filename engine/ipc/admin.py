"""Admin over ZeroMQ: JSON request/reply between ``cryptoscalp admin`` and a running engine.

Request ``{"cmd": NAME, "args": {...}}``, reply ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``. Commands: status, positions, orders, halt, reduce,
resume, flatten, cancel-all, set-limit, reload-model, rollback-model, shutdown.

Transport:
- local (default): ``ipc://PATH``; the socket file is created with mode 0600 (the umask
  is set around the bind, then the mode is checked), so only the engine's user can talk
  to it;
- TCP only with CURVE: the server has a key pair, and only clients whose public keys are in
  its authorised list get through (ZAP handler); an unauthenticated client gets no reply.
  ``AdminServer(..., tcp=...)`` without keys is refused.
"""
from __future__ import annotations

import asyncio
import os
import stat

import orjson
import zmq
import zmq.asyncio

COMMANDS = ("status", "positions", "orders", "halt", "reduce", "resume", "flatten", "cancel-all", "set-limit",
            "reload-model", "rollback-model", "shutdown")


class AdminError(RuntimeError):
    pass


def generate_keys() -> tuple[bytes, bytes]:
    """(public, secret) Z85 CURVE key pair."""
    return zmq.curve_keypair()


class AdminServer:
    """Serves ``handlers[cmd](args) -> result`` (sync or async) on a REP socket."""

    def __init__(self, handlers: dict, endpoint: str, *, server_secret: bytes | None = None,
                 server_public: bytes | None = None, authorized: list[bytes] | None = None):
        unknown = set(handlers) - set(COMMANDS)
        if unknown:
            raise ValueError(f"unknown admin commands {sorted(unknown)}")
        self.handlers = handlers
        self.endpoint = endpoint
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.auth = None
        self.served = 0
        if endpoint.startswith("tcp://"):
            if not (server_secret and server_public and authorized):
                raise AdminError("admin over TCP needs CURVE: a server key pair and the clients' public keys")
            from zmq.auth.asyncio import AsyncioAuthenticator
            self.auth = AsyncioAuthenticator(self.ctx)
            self.auth.start()
            self.auth.configure_curve_callback(domain="*", credentials_provider=_Allowed(authorized))
            self.sock.curve_secretkey = server_secret
            self.sock.curve_publickey = server_public
            self.sock.curve_server = True
            self.sock.bind(endpoint)
        elif endpoint.startswith("ipc://"):
            path = endpoint[len("ipc://"):]
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if os.path.exists(path):
                os.unlink(path)          # a stale socket of a dead engine (a live one would hold the lock file)
            old = os.umask(0o177)
            try:
                self.sock.bind(endpoint)
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode != 0o600:
                raise AdminError(f"{path}: mode {oct(mode)}, expected 0600")
        else:
            raise AdminError(f"admin endpoint {endpoint!r}: ipc://PATH, or tcp://HOST:PORT with CURVE keys")

    async def serve(self) -> None:
        while True:
            raw = await self.sock.recv()
            try:
                req = orjson.loads(raw)
                cmd = req.get("cmd")
                if cmd not in self.handlers:
                    raise AdminError(f"unknown command {cmd!r}; known: {', '.join(c for c in COMMANDS if c in self.handlers)}")
                res = self.handlers[cmd](req.get("args") or {})
                if asyncio.iscoroutine(res):
                    res = await res
                rep = {"ok": True, "result": res}
            except Exception as e:      # a bad request is answered, never fatal
                rep = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            self.served += 1
            await self.sock.send(orjson.dumps(rep, option=orjson.OPT_NON_STR_KEYS, default=_default))

    def close(self) -> None:
        self.sock.close(0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()


class _Allowed:
    def __init__(self, keys):
        self.keys = {k if isinstance(k, bytes) else k.encode() for k in keys}

    def callback(self, domain, key):          # key: the client's public key, Z85
        return key in self.keys


def _default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON: {type(o).__name__}")


def request(endpoint: str, cmd: str, args: dict | None = None, timeout_s: float = 5.0, *,
            client_secret: bytes | None = None, client_public: bytes | None = None,
            server_public: bytes | None = None) -> dict:
    """One request, one reply (raises AdminError on timeout: no engine, or refused)."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    s.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
    if endpoint.startswith("tcp://"):
        if not (client_secret and client_public and server_public):
            s.close(0)
            raise AdminError("admin over TCP needs CURVE keys (client key pair and the server's public key)")
        s.curve_secretkey, s.curve_publickey, s.curve_serverkey = client_secret, client_public, server_public
    try:
        s.connect(endpoint)
        s.send(orjson.dumps({"cmd": cmd, "args": args or {}}))
        try:
            return orjson.loads(s.recv())
        except zmq.Again:
            raise AdminError(f"no reply from {endpoint} within {timeout_s:g} s (engine not running, or refused)")
    finally:
        s.close(0)
