"""OrderGateway: ORDER records out to a Binance USD-M venue (the real one or the sim),
EXEC records back.

- Signing: HMAC-SHA256 over the query string, X-MBX-APIKEY, timestamp and recvWindow.
- The order path: ``start(order)`` writes a NEW or CANCEL synchronously on a pre-opened
  keep-alive connection (``engine.execution.http1``) and stamps ``t_send`` after the write;
  the answer, retries and everything else are awaited afterwards. With no idle connection
  the request takes aiohttp (``BinanceRest.call``), as every other request does.
- Client order ids ``<prefix>-<client_id in hex>`` make retries idempotent: a NEW whose
  response was lost is sent again with the same id; -4116 (duplicate) means the first one
  landed, and the order is looked up by that id instead of being placed twice.
- Rate limits: the venue's X-MBX-USED-WEIGHT-1M is tracked; 429 stops sending until
  Retry-After has passed (a local reject meanwhile), 418 stops until the ban ends.
- Circuit breaker: ``max_errors`` failures (5xx, timeouts, bans) within ``window_s`` open it
  for ``cooldown_s``: sends are refused locally (EXEC REJECT with reason -1) and the risk
  process should HALT; after the cool-down one request is let through (half-open).
- Reconciliation: ``reconcile()`` compares the venue's open orders and positions with what
  the gateway believes; orders the venue no longer has become CANCELED records, orders the
  gateway did not know are reported (and can be cancelled).
- Cancel-on-disconnect: ``heartbeat()`` renews countdownCancelAll; if we die or lose the
  connection, the venue cancels our orders after ``countdown_ms``.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import orjson

from cext.orderwire import WriteHold
from cext.records import order_head, stamp_send
from engine import schema
from engine.venues.instruments import Instrument

OTYPE = {schema.OT_LIMIT: ("LIMIT", "GTC"), schema.OT_POST_ONLY: ("LIMIT", "GTX"), schema.OT_IOC: ("LIMIT", "IOC"),
         schema.OT_FOK: ("LIMIT", "FOK"), schema.OT_MARKET: ("MARKET", None)}
SIDE = {schema.SIDE_BUY: "BUY", schema.SIDE_SELL: "SELL"}
log = logging.getLogger("cryptoscalp.gateway")


# keys and values joined by NUL: one match checks them all (NUL itself is counted, so a
# NUL inside a key or value cannot pass for a separator)
_UNRESERVED_ALL = re.compile("[A-Za-z0-9._~\x00-]*\\Z")


def query(params: dict) -> str:
    """``urllib.parse.urlencode(params)``, byte for byte, in ~2 us instead of ~10 when every
    key and value is made of unreserved characters (an order's always are: symbol, side,
    type, numbers, our client order id); anything else goes through urlencode."""
    items = [(k, v if isinstance(v, str) else str(v)) for k, v in params.items()]
    flat = "\x00".join([x for kv in items for x in kv])
    if items and (not _UNRESERVED_ALL.match(flat) or flat.count("\x00") != 2 * len(items) - 1):
        return urllib.parse.urlencode(params)
    return "&".join([f"{k}={v}" for k, v in items])


# Venue rejects that are the market's answer, not a sign of trouble with the venue or our
# requests: they do not count toward the risk monitor's exchange-error storm.
MARKET_OUTCOMES = {-5022: "post-only order would have taken liquidity (GTX)"}


def pcts_us(ns: list) -> dict:
    """{"n", "p50", "p90", "p99"} in microseconds of durations in ns (the last 20,000)."""
    if not ns:
        return {"n": 0}
    a = np.asarray(ns[-20000:], dtype=np.float64) / 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"n": len(ns), "p50": round(float(p50), 1), "p90": round(float(p90), 1), "p99": round(float(p99), 1)}


class VenueError(Exception):
    def __init__(self, status: int, code: int, msg: str, retry_after: float = 0.0):
        super().__init__(f"HTTP {status} {code}: {msg}")
        self.status, self.code, self.msg, self.retry_after = status, code, msg, retry_after


class _HoldUntil:
    """A ``WriteHold``'s time as a float attribute of its owner's ``hold``: Python reads and
    sets it as any attribute, the compiled path reads the C field."""

    def __get__(self, obj, cls=None):
        return self if obj is None else obj.hold.until

    def __set__(self, obj, t: float) -> None:
        obj.hold.until = t


@dataclass
class CircuitBreaker:
    max_errors: int = 5
    window_s: float = 30.0
    cooldown_s: float = 30.0
    errors: deque = field(default_factory=deque)
    trips: int = 0
    hold: WriteHold = field(default_factory=WriteHold)      # open_until, where the compiled path reads it
    open_until = _HoldUntil()

    def allow(self, now: float) -> bool:
        return now >= self.open_until

    def failure(self, now: float) -> None:
        self.errors.append(now)
        while self.errors and now - self.errors[0] > self.window_s:
            self.errors.popleft()
        if len(self.errors) >= self.max_errors and now >= self.open_until:
            self.open_until = now + self.cooldown_s
            self.errors.clear()
            self.trips += 1

    def success(self) -> None:
        self.errors.clear()

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self.open_until


class BinanceRest:
    """Signed REST calls with weight tracking and 429/418 handling.

    Two ways out, one way back: ``call`` (aiohttp, any request) and, for orders,
    ``write`` + ``finish``: the signed request written synchronously on one of
    ``order_links`` keep-alive connections (``engine.execution.http1``; 0 turns them off),
    its answer read by ``finish``. Both answers go through ``_result`` (weights, 429/418,
    errors)."""

    def __init__(self, base_url: str, api_key: str, api_secret: str, recv_window: int = 5000,
                 timeout_s: float = 5.0, order_links: int = 8):
        if any(c in api_key for c in "\r\n"):
            raise ValueError("API key contains a line break")
        self.base = base_url.rstrip("/")
        self.key, self.secret = api_key, api_secret.encode()
        self._mac = hmac.new(self.secret, digestmod=hashlib.sha256)     # keyed once, copied per request
        self.order_links = order_links
        self.links = None                 # OrderLinks once open()
        self._key_header = f"X-MBX-APIKEY: {api_key}\r\n"
        self.recv_window = recv_window
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session: aiohttp.ClientSession | None = None
        self.weight_used = 0
        self.hold = WriteHold()           # blocked_until, where the compiled path reads it
        self.sign_ns: list[int] = []      # per request written at once: encoding and signing ...
        self.write_ns: list[int] = []     # ... and the write itself (the first 100,000 of each)
        self.time_offset_ms = 0           # venue time - our time, from /time

    blocked_until = _HoldUntil()          # monotonic seconds: after a 429 / 418, nothing is sent before this

    async def open(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=self.timeout)
            if self.order_links > 0 and self.links is None:
                from engine.execution.http1 import OrderLinks
                self.links = OrderLinks(self.base, self.order_links)
                await self.links.open()

    async def close(self) -> None:
        if self.links is not None:
            await self.links.close()
            self.links = None
        if self.session is not None:
            await self.session.close()
            self.session = None

    def sign(self, params: dict) -> str:
        q = query(params)
        q += f"&timestamp={int(time.time() * 1000) + self.time_offset_ms}&recvWindow={self.recv_window}"
        mac = self._mac.copy()
        mac.update(q.encode())
        return q + "&signature=" + mac.hexdigest()

    def send_split(self) -> dict:
        """p50/p90/p99 (us) of signing and writing the requests written at once (the last 20,000)."""
        return {"sign": pcts_us(self.sign_ns), "write": pcts_us(self.write_ns)}

    async def call(self, method: str, path: str, params: dict | None = None, signed: bool = True):
        now = time.monotonic()
        if now < self.blocked_until:
            raise VenueError(429, -1003, "rate limited: waiting for Retry-After", self.blocked_until - now)
        await self.open()
        q = self.sign(params or {}) if signed else urllib.parse.urlencode(params or {})
        url = f"{self.base}{path}" + (f"?{q}" if q else "")
        async with self.session.request(method, url, headers={"X-MBX-APIKEY": self.key}) as r:
            body = await r.read()
            return self._result(r.status, r.headers, body)

    def write(self, method: str, path: str, params: dict):
        """Sign and write a request now, on an idle order connection: a handle for
        ``finish``, or None (no connection idle, links off, or waiting out a 429/418)."""
        if self.links is None or time.monotonic() < self.blocked_until:
            return None
        t0 = time.monotonic_ns()
        target = f"{path}?{self.sign(params)}"
        t1 = time.monotonic_ns()
        sent = self.links.request(method, target, self._key_header)
        if sent is not None and len(self.sign_ns) < 100_000:
            self.sign_ns.append(t1 - t0)
            self.write_ns.append(time.monotonic_ns() - t1)
        return sent

    def write_encoded(self, build, order):
        """``write`` for a request built whole by ``build(order)`` (cext.orderwire's
        OrderEncoder: parameters, signature and bytes in one C call)."""
        if self.links is None or time.monotonic() < self.blocked_until:
            return None
        t0 = time.monotonic_ns()
        data = build(order)
        t1 = time.monotonic_ns()
        sent = self.links.send(data)
        if sent is not None and len(self.sign_ns) < 100_000:
            self.sign_ns.append(t1 - t0)
            self.write_ns.append(time.monotonic_ns() - t1)
        return sent

    def rehearse_encoded(self, build, order) -> int:
        """``write_encoded`` up to the write: the request built (its length returned) and an
        idle connection looked for (``OrderLinks.idle_link``); nothing written."""
        if self.links is None or time.monotonic() < self.blocked_until:
            return 0
        data = build(order)
        self.links.idle_link()
        return len(data)

    def encoder(self, client_prefix: str, instruments):
        """A cext.orderwire.OrderEncoder for these order links (None before ``open`` or
        with the links off); ValueError when a symbol or the prefix would need escaping."""
        if self.links is None:
            return None
        from cext.orderwire import OrderEncoder
        return OrderEncoder(self.secret, self.key, self.links.host_header, self.links.prefix, client_prefix,
                            instruments, self.recv_window)

    def rehearse(self, method: str, path: str, params: dict) -> int:
        """What ``write`` does before the write, for nothing: parameters, signature and the
        request's bytes (their length returned). Keeps this code in the CPU caches of a
        busy-polling engine between orders (measured: signing p50 41 -> 14 us in the
        running engine)."""
        target = f"{path}?{self.sign(params)}"
        return len(self.links.encode(method, target, self._key_header)) if self.links is not None else len(target)

    async def finish(self, sent):
        """The answer to a ``write``: data, or VenueError; ConnectionError if the connection
        dropped, asyncio.TimeoutError after ``timeout_s`` (the connection is then closed: a
        late answer must not be read as the next request's)."""
        link, fut = sent
        try:
            r = await asyncio.wait_for(fut, self.timeout.total)
        except asyncio.TimeoutError:
            link.close()
            raise
        return self._result(r.status, r.headers, r.body)

    def _result(self, status: int, headers, body: bytes):
        """headers: anything with a case-insensitive ``get`` (aiohttp's) or lower-case keys."""
        w = headers.get("x-mbx-used-weight-1m")
        if w:
            self.weight_used = int(w)
        if status in (429, 418):
            retry = float(headers.get("retry-after", "1"))
            self.blocked_until = time.monotonic() + retry
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            if status < 400:
                # the order may have landed: retried like a lost answer (same client order id)
                raise VenueError(599, -1, f"unreadable answer (HTTP {status}): {body[:200]!r}") from None
            data = None
        if status >= 400:
            code = data.get("code", 0) if isinstance(data, dict) else 0
            msg = data.get("msg", "") if isinstance(data, dict) else body[:200].decode(errors="replace")
            raise VenueError(status, code, msg, float(headers.get("retry-after", "0") or 0))
        return data

    async def sync_time(self) -> int:
        t0 = time.time() * 1000
        data = await self.call("GET", "/fapi/v1/time", signed=False)
        t1 = time.time() * 1000
        self.time_offset_ms = int(data["serverTime"] - (t0 + t1) / 2)
        return self.time_offset_ms


class OrderGateway:
    def __init__(self, rest: BinanceRest, instruments: list[Instrument], prefix: str = "cs",
                 breaker: CircuitBreaker | None = None, retries: int = 2, countdown_ms: int = 10_000):
        if not prefix or len(prefix) > 8 or not prefix.isalnum():
            raise ValueError("prefix must be 1-8 letters or digits")
        self.rest = rest
        self.by_inst = {i.inst: i for i in instruments}
        self.by_symbol = {i.symbol: i for i in instruments}
        self.prefix = prefix
        self.breaker = breaker or CircuitBreaker()
        self.retries = retries
        self.countdown_ms = countdown_ms
        self.open: dict[int, dict] = {}          # client_id -> {"inst", "order_id", "side", "px", "qty"}
        self.stats = {"sent": 0, "retries": 0, "duplicates_resolved": 0, "rejects": 0, "breaker_refusals": 0,
                      "rate_limited": 0, "fast_sent": 0, "fast_errors": 0, "countdown_renewals": 0}
        self._renewed = -1e18                    # when the countdown was last renewed (monotonic s)
        self.last_fast_error = ""
        self._rehearsal = None
        self._enc = None                         # cext.orderwire.OrderEncoder (see _encoder)
        self._enc_refused = False

    # ---------------------------------------------------------------- ids
    def client_order_id(self, client_id: int) -> str:
        return f"{self.prefix}-{client_id:x}"

    def parse_client_order_id(self, s: str) -> int | None:
        if s.startswith(self.prefix + "-"):
            try:
                return int(s[len(self.prefix) + 1:], 16)
            except ValueError:
                return None
        return None

    # ---------------------------------------------------------------- orders out
    def _exec(self, order, kind: int, reason: int = 0, order_id: int = 0) -> np.ndarray:
        e = np.zeros(1, schema.EXEC_DTYPE)
        e["kind"], e["side"], e["inst"], e["client_id"] = kind, order["side"], order["inst"], order["client_id"]
        e["exch_order_id"], e["px"], e["order_px"], e["reason"] = order_id, order["px"], order["px"], reason
        e["leaves_qty"] = order["qty"] if kind == schema.EX_ACK else 0
        e["strategy"], e["mono_origin"], e["mono_send"] = order["strategy"], order["mono_origin"], order["t_send"]
        return e

    def start(self, order: np.ndarray, write: bool = True):
        """Begin sending one ORDER record (1-element array), synchronously: the checks, and
        for NEW and CANCEL the signed request written now on an idle order connection, with
        ``t_send`` stamped after the write. Returns an awaitable of the EXEC records (ACK or
        REJECT for NEW, CANCELED or REJECT for CANCEL; fills arrive through
        ``on_user_event``). With no idle connection (or for REPLACE and CANCEL_ALL) the
        request goes out through aiohttp when the awaitable runs, ``t_send`` stamped just
        before it. Never raises: a failure is a REJECT record. ``write=False``: the write
        was tried already and did not happen (cext.hotpath): the checks, then the slow path."""
        action, inst, client_id, ref_id = order_head(order)    # in C: numpy scalar reads cost ~1 us each
        o = order[0]
        ins = self.by_inst.get(inst)
        if ins is None:
            return _ready(self._exec(o, schema.EX_REJECT, -1121))
        if not self.breaker.allow(time.monotonic()):
            self.stats["breaker_refusals"] += 1
            return _ready(self._exec(o, schema.EX_REJECT, -1))
        sent = self._write(order, o, ins, action, client_id, ref_id) if write else None
        if sent is not None:
            stamp_send(order)
            self.stats["fast_sent"] += 1
        return self._complete(order, o, ins, self.client_order_id(client_id), action, sent)

    def _write(self, order, o, ins: Instrument, action: int, client_id: int, ref_id: int):
        """The request written now on an idle order connection: its handle, or None."""
        try:
            enc = self._encoder()
            if enc is not None:
                build = _builder(enc, action)
                if build is None:
                    return None
                enc.time_offset_ms = self.rest.time_offset_ms
                return self.rest.write_encoded(build, order)
            if action == schema.ACT_NEW:
                return self.rest.write("POST", "/fapi/v1/order", self._params(o, ins, self.client_order_id(client_id)))
            if action == schema.ACT_CANCEL:
                ref = self.client_order_id(ref_id or client_id)
                return self.rest.write("DELETE", "/fapi/v1/order", {"symbol": ins.symbol, "origClientOrderId": ref})
        except Exception as e:                  # a bad record or a dead transport: the slow path decides
            self.stats["fast_errors"] += 1
            self.last_fast_error = f"{type(e).__name__}: {e}"
        return None

    def written(self, order: np.ndarray, link, fut):
        """``start``'s awaitable for an order the compiled decision path (cext.hotpath) has
        written already, with its ``t_send``, on ``link`` (whose answer ``fut`` gets)."""
        action, inst, client_id, _ = order_head(order)
        self.stats["fast_sent"] += 1
        return self._complete(order, order[0], self.by_inst[inst], self.client_order_id(client_id), action,
                              (link, fut))

    def _encoder(self):
        """The compiled request encoder once the order links are open (None before, or
        for good when the instruments cannot be encoded without escaping: said once)."""
        if self._enc is None and not self._enc_refused and self.rest.links is not None:
            try:
                self._enc = self.rest.encoder(self.prefix, list(self.by_inst.values()))
            except ValueError as e:
                self._enc_refused = True
                log.warning("order requests built in Python: %s", e)
        return self._enc

    def rehearse(self, order: np.ndarray | None = None) -> int:
        """What ``start`` does before the write, for nothing: the record's fields read,
        the checks, the client order id, the request built and signed (``BinanceRest``'s
        ``rehearse_encoded`` / ``rehearse``), nothing written and no counter moved.
        ``order``: an ORDER_DTYPE record to rehearse with (default: a post-only bid of one
        lot at one tick on the first instrument, client id 0). Returns the request's length
        (0 when ``start`` would refuse it before building a request)."""
        a = order
        if a is None:
            a = self._rehearsal
            if a is None:
                a = self._rehearsal = np.zeros(1, schema.ORDER_DTYPE)
                a["action"], a["side"], a["otype"], a["px"], a["qty"] = \
                    schema.ACT_NEW, schema.SIDE_BUY, schema.OT_POST_ONLY, 1, 1
                a["inst"] = next(iter(self.by_inst))
        o = a[0]
        ins = self.by_inst.get(int(o["inst"]))
        if ins is None or not self.breaker.allow(time.monotonic()):
            return 0
        action = int(o["action"])
        cid = self.client_order_id(int(o["client_id"]))
        enc = self._encoder()
        if enc is not None:
            build = _builder(enc, action)
            return self.rest.rehearse_encoded(build, a) if build is not None else 0
        return self.rest.rehearse("POST", "/fapi/v1/order", self._params(o, ins, cid))

    async def send(self, order: np.ndarray) -> np.ndarray:
        """``start`` and wait for its EXEC records."""
        return await self.start(order)

    async def _complete(self, order, o, ins: Instrument, cid: str, action: int, sent) -> np.ndarray:
        if sent is None:
            order["t_send"] = time.monotonic_ns()
        try:
            if action == schema.ACT_NEW:
                return await self._new(o, ins, cid, sent)
            if action == schema.ACT_CANCEL:
                ref = self.client_order_id(int(o["ref_client_id"] or o["client_id"]))
                return await self._cancel(o, ins, ref, sent)
            if action == schema.ACT_CANCEL_ALL:
                await self.rest.call("DELETE", "/fapi/v1/allOpenOrders", {"symbol": ins.symbol})
                out = [self._exec({**_fields(o), "client_id": c}, schema.EX_CANCELED)
                       for c, v in list(self.open.items()) if v["inst"] == ins.inst]
                for c in [c for c, v in self.open.items() if v["inst"] == ins.inst]:
                    del self.open[c]
                self.breaker.success()
                return np.concatenate(out) if out else np.zeros(0, schema.EXEC_DTYPE)
            if action == schema.ACT_REPLACE:
                ref = self.client_order_id(int(o["ref_client_id"]))
                first = await self._cancel(o, ins, ref)
                return np.concatenate([first, await self._new(o, ins, cid)])
        except VenueError as e:
            if e.status in (429, 418):
                self.stats["rate_limited"] += 1
            if e.status >= 500 or e.status in (418,):
                self.breaker.failure(time.monotonic())
            self.stats["rejects"] += 1
            return self._exec(o, schema.EX_REJECT, e.code)
        return self._exec(o, schema.EX_REJECT, -1)

    def _params(self, o, ins: Instrument, cid: str) -> dict:
        typ, tif = OTYPE[int(o["otype"])]
        p = {"symbol": ins.symbol, "side": SIDE[int(o["side"])], "type": typ, "quantity": ins.lots_to_qty(int(o["qty"])),
             "newClientOrderId": cid, "newOrderRespType": "ACK"}
        if tif:
            p["timeInForce"] = tif
            p["price"] = ins.ticks_to_price(int(o["px"]))
        if int(o["flags"]) & schema.OF_REDUCE_ONLY:
            p["reduceOnly"] = "true"
        return p

    async def _new(self, o, ins: Instrument, cid: str, sent=None) -> np.ndarray:
        """Place (or, with ``sent``, finish placing) a NEW; transient failures are retried
        with the same client order id."""
        params = self._params(o, ins, cid)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                if attempt == 0 and sent is not None:
                    r = await self.rest.finish(sent)
                else:
                    r = await self.rest.call("POST", "/fapi/v1/order", params)
                self.stats["sent"] += 1
                self.breaker.success()
                self.open[int(o["client_id"])] = {"inst": ins.inst, "order_id": r["orderId"]}
                return self._exec(o, schema.EX_ACK, 0, r["orderId"])
            except VenueError as e:
                if e.code == -4116 and attempt > 0:
                    # our earlier attempt landed (its response was lost): use it, do not place twice
                    q = await self.rest.call("GET", "/fapi/v1/order", {"symbol": ins.symbol, "origClientOrderId": cid})
                    self.stats["duplicates_resolved"] += 1
                    self.open[int(o["client_id"])] = {"inst": ins.inst, "order_id": q["orderId"]}
                    return self._exec(o, schema.EX_ACK, 0, q["orderId"])
                if e.status < 500:
                    raise
                last = e
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
                last = e
            self.stats["retries"] += 1
            self.breaker.failure(time.monotonic())
            await asyncio.sleep(0.05 * (attempt + 1))
        if isinstance(last, VenueError):
            raise last
        raise VenueError(599, -1, f"no response: {last}")

    async def _cancel(self, o, ins: Instrument, ref: str, sent=None) -> np.ndarray:
        params = {"symbol": ins.symbol, "origClientOrderId": ref}
        try:
            try:
                if sent is None:
                    await self.rest.call("DELETE", "/fapi/v1/order", params)
                else:
                    await self.rest.finish(sent)
            except (ConnectionError, asyncio.TimeoutError):
                if sent is None:
                    raise
                await self.rest.call("DELETE", "/fapi/v1/order", params)      # once more (idempotent)
        except VenueError as e:
            if e.code != -2011:          # unknown order: it is gone already (filled or cancelled)
                raise
        cid = self.parse_client_order_id(ref)
        self.open.pop(cid, None)
        self.breaker.success()
        rec = {**_fields(o), "client_id": cid if cid is not None else int(o["client_id"])}
        return self._exec(rec, schema.EX_CANCELED)

    # ---------------------------------------------------------------- reports in
    def on_user_event(self, ev: dict) -> np.ndarray:
        """ORDER_TRADE_UPDATE -> EXEC records (others: none)."""
        if ev.get("e") != "ORDER_TRADE_UPDATE":
            return np.zeros(0, schema.EXEC_DTYPE)
        o = ev["o"]
        cid = self.parse_client_order_id(o.get("c", ""))
        ins = self.by_symbol.get(o.get("s"))
        if cid is None or ins is None:
            return np.zeros(0, schema.EXEC_DTYPE)
        x, status = o.get("x"), o.get("X")
        kind = {"NEW": schema.EX_ACK, "CANCELED": schema.EX_CANCELED, "EXPIRED": schema.EX_EXPIRED,
                "REJECTED": schema.EX_REJECT, "TRADE": schema.EX_FILL if status == "FILLED" else schema.EX_PARTIAL
                }.get(x)
        if kind is None:
            return np.zeros(0, schema.EXEC_DTYPE)
        e = np.zeros(1, schema.EXEC_DTYPE)
        e["kind"], e["inst"], e["client_id"], e["exch_order_id"] = kind, ins.inst, cid, int(o.get("i", 0))
        e["side"] = schema.SIDE_BUY if o.get("S") == "BUY" else schema.SIDE_SELL
        e["liquidity"] = (schema.LIQ_MAKER if o.get("m") else schema.LIQ_TAKER) if x == "TRADE" else schema.LIQ_NONE
        if x == "TRADE":
            e["px"] = ins.price_to_ticks(o["L"])
            e["qty"] = ins.qty_to_lots(o["l"])
            e["fee"] = float(o.get("n") or 0)
            e["trade_id"] = int(o.get("t", 0))
        cum = ins.qty_to_lots(o.get("z", "0"))
        e["cum_qty"] = cum
        e["leaves_qty"] = max(0, ins.qty_to_lots(o.get("q", "0")) - cum) if status not in ("CANCELED", "EXPIRED", "FILLED") else 0
        if o.get("p") and o["p"] not in ("0", "0.0"):
            e["order_px"] = ins.price_to_ticks(o["p"])
        e["exch_ts"] = int(o.get("T", ev.get("T", 0))) * 1_000_000
        e["mono_recv"] = time.monotonic_ns()
        if status in ("FILLED", "CANCELED", "EXPIRED", "REJECTED"):
            self.open.pop(cid, None)
        return e

    # ---------------------------------------------------------------- state
    async def reconcile(self) -> dict:
        """Compare with the venue: returns {"gone": EXEC CANCELED records for orders the
        venue no longer has, "unknown": venue orders we did not send, "positions": {symbol: qty}}."""
        venue = await self.rest.call("GET", "/fapi/v1/openOrders")
        seen = set()
        unknown = []
        for v in venue:
            cid = self.parse_client_order_id(v.get("clientOrderId", ""))
            if cid is None or cid not in self.open:
                unknown.append(v)
            else:
                seen.add(cid)
        gone = []
        for cid in [c for c in self.open if c not in seen]:
            info = self.open.pop(cid)
            e = np.zeros(1, schema.EXEC_DTYPE)
            e["kind"], e["inst"], e["client_id"], e["exch_order_id"] = schema.EX_CANCELED, info["inst"], cid, info["order_id"]
            gone.append(e)
        pos = await self.rest.call("GET", "/fapi/v2/positionRisk")
        return {"gone": np.concatenate(gone) if gone else np.zeros(0, schema.EXEC_DTYPE), "unknown": unknown,
                "positions": {p["symbol"]: p["positionAmt"] for p in pos}}

    async def follow_user_stream(self, ws_base: str, stopped, on_down, on_reconciled, on_reports) -> None:
        """The venue's user data stream until ``stopped()``: before every (re)connect
        ``on_down(error)`` (None the first time); once connected, the open orders reconciled
        (``reconcile``) and ``await on_reconciled(result)``: only then may the caller trade;
        then every message's EXEC records to ``on_reports``. A lost stream is reconnected
        after 1 s. Used by the fused engine and by the gateway process alike."""
        err = None
        while not stopped():
            on_down(err)
            try:
                lk = (await self.rest.call("POST", "/fapi/v1/listenKey", signed=False))["listenKey"]
                async with aiohttp.ClientSession() as s, s.ws_connect(f"{ws_base}/ws/{lk}") as ws:
                    await on_reconciled(await self.reconcile())
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            raise ConnectionError(f"user stream closed ({msg.type.name})")
                        execs = self.on_user_event(orjson.loads(msg.data))
                        if len(execs):
                            on_reports(execs)
                    raise ConnectionError("user stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as e:           # the venue went away: reconnect, reconcile
                if stopped():
                    return
                err = e
                log.warning("user stream: %s: reconnecting", e)
                await asyncio.sleep(1.0)

    def counters(self) -> dict:
        """``stats`` and the order connections' counters (``links_opened``, ``links_lost``,
        ``links_all_busy``: a request found every connection waiting and went the slow way)."""
        links = self.rest.links
        return {**self.stats, **({f"links_{k}": v for k, v in links.stats.items()} if links is not None else {})}

    async def heartbeat(self) -> None:
        """Renew the venue's cancel-on-disconnect countdown for every instrument, at most
        every quarter of the countdown (called more often, it returns at once): each renewal
        costs 10 of the venue's 2,400 request weight a minute per instrument, so renewing a
        10 s countdown every second would spend 600 a minute on one symbol."""
        now = time.monotonic()
        if now - self._renewed < self.countdown_ms / 4000:
            return
        for ins in self.by_inst.values():
            await self.rest.call("POST", "/fapi/v1/countdownCancelAll",
                                 {"symbol": ins.symbol, "countdownTime": self.countdown_ms})
        self._renewed = now
        self.stats["countdown_renewals"] += 1


def _builder(enc, action: int):
    """The compiled encoder's request builder for an action (NEW, CANCEL), or None."""
    return enc.new if action == schema.ACT_NEW else enc.cancel if action == schema.ACT_CANCEL else None


async def _ready(value):
    return value


def _fields(o) -> dict:
    return {k: o[k] for k in ("side", "inst", "client_id", "px", "qty", "strategy", "mono_origin", "t_send")}
