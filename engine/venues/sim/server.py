"""The simulated exchange's server: Binance USD-M REST and WebSocket on one port (aiohttp
on uvloop; one port needs one HTTP server for both, so the WebSocket side is aiohttp's,
not picows, which is our client).

REST: /fapi/v1/{ping,time,exchangeInfo,depth,ticker/bookTicker,premiumIndex,order,
openOrders,allOpenOrders,batchOrders,countdownCancelAll,leverage,listenKey,userTrades,
positionSide/dual}, /fapi/v2/{account,balance,positionRisk} (and v3).
Signed endpoints check X-MBX-APIKEY, the HMAC-SHA256 ``signature`` over the query string
plus body, ``timestamp`` within ``recvWindow`` (default 5000 ms, max 60000); errors in
Binance's shapes. Request weights per minute, 429 with Retry-After past the limit, 418 and
a ban for a client that keeps going (weights from Binance's docs for these endpoints).
WebSocket: /ws/<stream>[/<stream>...], /stream?streams=a/b (combined wrapper), and
/ws/<listenKey> for the user data stream (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE,
listenKeyExpired).
Faults (all off by default): see ``Faults``.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from aiohttp import WSMsgType, web

from engine.venues.sim.exchange import BinanceError, SimExchange

log = logging.getLogger("cryptoscalp.sim")

TEST_API_KEY = "csim-test-key-0000000000000000000000000000000000000000000000000000000000"
TEST_API_SECRET = "csim-test-secret-000000000000000000000000000000000000000000000000000000"


@dataclass
class Faults:
    disconnect_every_s: float = 0.0    # drop every WebSocket client this often
    stall_s: float = 0.0               # pause market data this long ...
    stall_every_s: float = 0.0         # ... this often
    gap_prob: float = 0.0              # drop a depth diff before publishing it (a sequence gap)
    http_429_prob: float = 0.0
    http_5xx_prob: float = 0.0
    ack_delay_ms: float = 0.0          # delay order responses
    drop_user_event_prob: float = 0.0
    clock_skew_ms: int = 0             # the server's clock runs ahead by this much

    @classmethod
    def parse(cls, spec: str | None) -> "Faults":
        """'gap_prob=0.01,http_5xx_prob=0.05' -> Faults"""
        f = cls()
        for part in (spec or "").split(","):
            if not part.strip():
                continue
            k, _, v = part.partition("=")
            k = k.strip()
            if not hasattr(f, k):
                raise ValueError(f"unknown fault {k!r}; known: {', '.join(cls.__dataclass_fields__)}")
            setattr(f, k, type(getattr(f, k))(v))
        return f


WEIGHTS = {"/fapi/v1/ping": 1, "/fapi/v1/time": 1, "/fapi/v1/exchangeInfo": 1, "/fapi/v1/ticker/bookTicker": 2,
           "/fapi/v1/premiumIndex": 1, "/fapi/v1/order": 1, "/fapi/v1/openOrders": 1, "/fapi/v1/allOpenOrders": 1,
           "/fapi/v1/batchOrders": 5, "/fapi/v1/countdownCancelAll": 10, "/fapi/v1/leverage": 1,
           "/fapi/v1/listenKey": 1, "/fapi/v2/account": 5, "/fapi/v3/account": 5, "/fapi/v2/balance": 5,
           "/fapi/v3/balance": 5, "/fapi/v2/positionRisk": 5, "/fapi/v3/positionRisk": 5,
           "/fapi/v1/positionSide/dual": 30, "/fapi/v1/leverageBracket": 1, "/fapi/v1/userTrades": 5}


def depth_weight(limit: int) -> int:
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


@dataclass
class _Limiter:
    per_minute: int
    window_start: float = 0.0
    used: int = 0
    strikes: int = 0
    banned_until: float = 0.0

    def take(self, w: int, now: float):
        if now < self.banned_until:
            return 418, int(self.banned_until - now) + 1
        if now - self.window_start >= 60:     # a minute from the window's first request
            self.window_start, self.used = now, 0
            self.strikes = 0
        if self.used + w > self.per_minute:
            self.strikes += 1
            retry = int(60 - (now - self.window_start)) + 1
            if self.strikes > 3:              # kept going after 429s: ban
                self.banned_until = now + 120
                return 418, 120
            return 429, retry
        self.used += w
        return 200, 0


class SimServer:
    def __init__(self, sim: SimExchange, api_key: str = TEST_API_KEY, api_secret: str = TEST_API_SECRET,
                 faults: Faults | None = None, weight_limit: int = 2400, seed: int = 1):
        self.sim = sim
        self.keys = {api_key: api_secret}
        self.faults = faults or Faults()
        self.limiter = _Limiter(weight_limit)
        self.rng = random.Random(seed)
        self.market_clients: list[tuple[web.WebSocketResponse, set[str], bool]] = []
        self.user_clients: dict[str, list[web.WebSocketResponse]] = {}
        self.listen_keys: dict[str, float] = {}          # key -> expiry (monotonic s)
        self.stats = {"requests": 0, "errors": 0, "frames_out": 0, "gaps_injected": 0, "disconnects": 0,
                      "user_events_dropped": 0, "send_failures": 0}
        self.app = web.Application()
        r = self.app.router
        r.add_get("/fapi/v1/ping", self._ping)
        r.add_get("/fapi/v1/time", self._time)
        r.add_get("/fapi/v1/exchangeInfo", self._exchange_info)
        r.add_get("/fapi/v1/depth", self._depth)
        r.add_get("/fapi/v1/ticker/bookTicker", self._book_ticker)
        r.add_get("/fapi/v1/premiumIndex", self._premium)
        r.add_route("*", "/fapi/v1/order", self._order)
        r.add_get("/fapi/v1/openOrders", self._open_orders)
        r.add_delete("/fapi/v1/allOpenOrders", self._cancel_all)
        r.add_post("/fapi/v1/batchOrders", self._batch)
        r.add_post("/fapi/v1/countdownCancelAll", self._countdown)
        r.add_post("/fapi/v1/leverage", self._leverage)
        r.add_get("/fapi/v1/positionSide/dual", self._dual)
        r.add_get("/fapi/v1/leverageBracket", self._brackets)
        r.add_get("/fapi/v1/userTrades", self._user_trades)
        r.add_route("*", "/fapi/v1/listenKey", self._listen_key)
        for v in ("v2", "v3"):
            r.add_get(f"/fapi/{v}/account", self._account)
            r.add_get(f"/fapi/{v}/balance", self._balance)
            r.add_get(f"/fapi/{v}/positionRisk", self._position_risk)
        r.add_get("/ws/{streams:.*}", self._ws)
        r.add_get("/stream", self._ws)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---------------------------------------------------------------- lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.host = host
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def close(self) -> None:
        for ws, _, _ in list(self.market_clients):
            await ws.close()
        for lst in self.user_clients.values():
            for ws in lst:
                await ws.close()
        if self._runner:
            await self._runner.cleanup()

    # ---------------------------------------------------------------- market data out
    async def publish(self, stream: str, frame: bytes) -> None:
        """Send a combined-stream frame to subscribers of ``stream`` (raw /ws/ clients get
        the inner data). Applies the gap fault before anything sees the frame."""
        f = self.faults
        if f.gap_prob and "@depth" in stream and self.rng.random() < f.gap_prob:
            self.stats["gaps_injected"] += 1
            return
        data = None
        for ws, streams, combined in list(self.market_clients):
            if stream.lower() not in streams or ws.closed:
                continue
            if combined:
                ok = await self._send(ws, frame.decode())
            else:
                if data is None:
                    data = orjson.dumps(orjson.loads(frame)["data"]).decode()
                ok = await self._send(ws, data)
            self.stats["frames_out"] += ok

    async def flush_user_events(self) -> None:
        ev, self.sim.user_events = self.sim.user_events, []
        for e in ev:
            if self.faults.drop_user_event_prob and self.rng.random() < self.faults.drop_user_event_prob:
                self.stats["user_events_dropped"] += 1
                continue
            payload = orjson.dumps(e).decode()
            for key, lst in self.user_clients.items():
                for ws in list(lst):
                    if not ws.closed:
                        await self._send(ws, payload)
        now = time.monotonic()
        for key, exp in list(self.listen_keys.items()):
            if now > exp:
                del self.listen_keys[key]
                for ws in self.user_clients.pop(key, []):
                    if not ws.closed and await self._send(ws, orjson.dumps(
                            {"e": "listenKeyExpired", "E": self.sim.now_ms(), "listenKey": key}).decode()):
                        await ws.close()

    async def _send(self, ws: web.WebSocketResponse, text: str) -> bool:
        """Send to one client; a client whose peer went away (killed, reset) is counted and
        closed, never allowed to stop the market for everyone else. True when sent."""
        try:
            await ws.send_str(text)
            return True
        except (ConnectionError, RuntimeError, OSError) as e:
            self.stats["send_failures"] += 1
            log.info("websocket client gone (%s): dropped", type(e).__name__)
            try:
                await ws.close()
            except Exception:            # noqa: BLE001 - already broken; it is being dropped
                pass
            return False

    async def disconnect_all(self) -> None:
        self.stats["disconnects"] += 1
        for ws, _, _ in list(self.market_clients):
            await ws.close()
        for lst in self.user_clients.values():
            for ws in lst:
                await ws.close()

    # ---------------------------------------------------------------- plumbing
    def _json(self, obj, status: int = 200, headers=None) -> web.Response:
        return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json", headers=headers)

    def _err(self, e: BinanceError) -> web.Response:
        self.stats["errors"] += 1
        return self._json(e.body(), status=e.status)

    async def _params(self, request: web.Request) -> tuple[dict, str, str]:
        q = request.rel_url.raw_query_string   # as sent: the signature covers the encoded form
        body = (await request.text()) if request.can_read_body else ""
        params = dict(parse_qsl(q, keep_blank_values=True))
        params.update(dict(parse_qsl(body, keep_blank_values=True)))
        return params, q, body

    def _gate(self, request: web.Request, weight: int) -> web.Response | None:
        self.stats["requests"] += 1
        status, retry = self.limiter.take(weight, time.monotonic())
        if status == 429:
            return self._json({"code": -1003, "msg": "Too many requests; current limit is %d requests per minute."
                               % self.limiter.per_minute}, 429, {"Retry-After": str(retry)})
        if status == 418:
            return self._json({"code": -1003, "msg": f"Way too many requests; IP banned until "
                               f"{int((time.time() + retry) * 1000)}."}, 418, {"Retry-After": str(retry)})
        f = self.faults
        if f.http_429_prob and self.rng.random() < f.http_429_prob:
            return self._json({"code": -1003, "msg": "Too many requests (injected)."}, 429, {"Retry-After": "1"})
        if f.http_5xx_prob and self.rng.random() < f.http_5xx_prob:
            return self._json({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}, 503)
        return None

    def _auth(self, request: web.Request, params: dict, q: str, body: str, signed: bool = True) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if key not in self.keys:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if not signed:
            return
        sig = params.get("signature")
        if not sig:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        total = "&".join(x for x in (q, body) if x)
        # the signature covers everything before it
        payload = total.split("&signature=")[0] if "&signature=" in total else total.replace("signature=" + sig, "")
        want = hmac.new(self.keys[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        try:
            ts = int(params.get("timestamp"))
        except (TypeError, ValueError):
            raise BinanceError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        try:
            window = int(params.get("recvWindow", 5000))
        except ValueError:
            raise BinanceError(-1102, "Mandatory parameter 'recvWindow' was not sent, was empty/null, or malformed.")
        if window > 60000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        now = self._now_ms()
        if ts >= now + 1000 or now - ts > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + self.faults.clock_skew_ms

    async def _signed(self, request: web.Request, weight: int, fn, signed: bool = True) -> web.Response:
        g = self._gate(request, weight)
        if g is not None:
            return g
        try:
            params, q, body = await self._params(request)
            self._auth(request, params, q, body, signed)
            if self.faults.ack_delay_ms:
                await asyncio.sleep(self.faults.ack_delay_ms / 1000)
            out = fn(params)
            await self.flush_user_events()
            return self._json(out, headers={"X-MBX-USED-WEIGHT-1M": str(self.limiter.used)})
        except BinanceError as e:
            return self._err(e)

    # ---------------------------------------------------------------- public endpoints
    async def _ping(self, request):
        return self._gate(request, 1) or self._json({})

    async def _time(self, request):
        return self._gate(request, 1) or self._json({"serverTime": self._now_ms()})

    async def _exchange_info(self, request):
        g = self._gate(request, 1)
        if g:
            return g
        return self._json(exchange_info(self.sim.instruments, self.sim.max_open_orders, self.limiter.per_minute,
                                        self._now_ms()))

    async def _depth(self, request):
        try:
            limit = int(request.query.get("limit", 500))
        except ValueError:
            limit = 500
        g = self._gate(request, depth_weight(limit))
        if g:
            return g
        try:
            return self._json(self.sim.depth_json(request.query.get("symbol"), min(limit, 1000)))
        except BinanceError as e:
            return self._err(e)

    async def _book_ticker(self, request):
        g = self._gate(request, 2)
        if g:
            return g
        sym = request.query.get("symbol")
        try:
            if sym:
                return self._json(self.sim.book_ticker_json(sym))
            return self._json([self.sim.book_ticker_json(i.symbol) for i in self.sim.instruments])
        except BinanceError as e:
            return self._err(e)

    async def _premium(self, request):
        g = self._gate(request, 1)
        if g:
            return g
        sym = request.query.get("symbol")
        try:
            if sym:
                return self._json(self.sim.premium_index_json(sym))
            return self._json([self.sim.premium_index_json(i.symbol) for i in self.sim.instruments])
        except BinanceError as e:
            return self._err(e)

    # ---------------------------------------------------------------- signed endpoints
    async def _order(self, request):
        fn = {"POST": self.sim.new_order, "GET": self.sim.query_order, "DELETE": self.sim.cancel_order}.get(request.method)
        if fn is None:
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "DELETE"])
        return await self._signed(request, 1, fn)

    async def _open_orders(self, request):
        return await self._signed(request, 1 if request.query.get("symbol") else 40, self.sim.open_orders)

    async def _cancel_all(self, request):
        return await self._signed(request, 1, self.sim.cancel_all)

    async def _countdown(self, request):
        return await self._signed(request, 10, self.sim.countdown_cancel_all)

    async def _leverage(self, request):
        return await self._signed(request, 1, self.sim.set_leverage)

    async def _dual(self, request):
        return await self._signed(request, 30, lambda p: {"dualSidePosition": False})

    async def _brackets(self, request):
        def run(p):
            insts = [self.sim.instrument(p["symbol"])] if p.get("symbol") else self.sim.instruments
            return [{"symbol": i.symbol, "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": 125, "notionalCap": 1_000_000_000, "notionalFloor": 0,
                 "maintMarginRatio": self.sim.account.maint_rate, "cum": 0.0}]} for i in insts]
        return await self._signed(request, 1, run)

    async def _account(self, request):
        return await self._signed(request, 5, lambda p: self.sim.account_json())

    async def _balance(self, request):
        return await self._signed(request, 5, lambda p: self.sim.balance_json())

    async def _user_trades(self, request):
        return await self._signed(request, 5, self.sim.user_trades)

    async def _position_risk(self, request):
        return await self._signed(request, 5, lambda p: self.sim.position_risk_json(p.get("symbol")))

    async def _batch(self, request):
        def run(p):
            try:
                orders = orjson.loads(p.get("batchOrders", "[]"))
            except orjson.JSONDecodeError:
                raise BinanceError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
            if not isinstance(orders, list) or not 1 <= len(orders) <= 5:
                raise BinanceError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
            out = []
            for o in orders:
                try:
                    out.append(self.sim.new_order({k: str(v) for k, v in o.items()}))
                except BinanceError as e:
                    out.append(e.body())
            return out
        return await self._signed(request, 5, run)

    async def _listen_key(self, request):
        g = self._gate(request, 1)
        if g:
            return g
        try:
            params, q, body = await self._params(request)
            self._auth(request, params, q, body, signed=False)
        except BinanceError as e:
            return self._err(e)
        if request.method == "POST":
            key = next(iter(self.listen_keys), None) or secrets.token_hex(32)
            self.listen_keys[key] = time.monotonic() + 3600
            return self._json({"listenKey": key})
        if request.method == "PUT":
            key = next(iter(self.listen_keys), None)
            if key is None:
                return self._err(BinanceError(-1125, "This listenKey does not exist."))
            self.listen_keys[key] = time.monotonic() + 3600
            return self._json({"listenKey": key})
        if request.method == "DELETE":
            for key in list(self.listen_keys):
                del self.listen_keys[key]
            return self._json({})
        raise web.HTTPMethodNotAllowed(request.method, ["POST", "PUT", "DELETE"])

    # ---------------------------------------------------------------- WebSocket
    async def _ws(self, request: web.Request):
        ws = web.WebSocketResponse(heartbeat=180.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        if combined:
            streams = {s.lower() for s in request.query.get("streams", "").split("/") if s}
        else:
            streams = {s.lower() for s in request.match_info.get("streams", "").split("/") if s}
        user_keys = [s for s in streams if s in {k.lower() for k in self.listen_keys}]
        entry = None
        if user_keys and not combined:
            real = next(k for k in self.listen_keys if k.lower() == user_keys[0])
            self.user_clients.setdefault(real, []).append(ws)
        else:
            entry = (ws, streams, combined)
            self.market_clients.append(entry)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        m = orjson.loads(msg.data)
                        method, params, rid = m.get("method"), [p.lower() for p in m.get("params", [])], m.get("id")
                    except (orjson.JSONDecodeError, AttributeError, TypeError):
                        await ws.send_str('{"error":{"code":2,"msg":"Invalid request"}}')
                        continue
                    if method == "SUBSCRIBE":
                        streams.update(params)
                        await ws.send_str(orjson.dumps({"result": None, "id": rid}).decode())
                    elif method == "UNSUBSCRIBE":
                        streams.difference_update(params)
                        await ws.send_str(orjson.dumps({"result": None, "id": rid}).decode())
                    elif method == "LIST_SUBSCRIPTIONS":
                        await ws.send_str(orjson.dumps({"result": sorted(streams), "id": rid}).decode())
                    else:
                        await ws.send_str(orjson.dumps({"error": {"code": 1, "msg": "Invalid method"}, "id": rid}).decode())
        finally:
            if entry in self.market_clients:
                self.market_clients.remove(entry)
            for lst in self.user_clients.values():
                if ws in lst:
                    lst.remove(ws)
        return ws


def exchange_info(instruments, max_open_orders: int = 200, weight_per_minute: int = 2400, now_ms: int = 0) -> dict:
    """GET /fapi/v1/exchangeInfo as Binance USD-M answers it, for ``instruments``."""
    syms = []
    for ins in instruments:
        base = ins.symbol[:-4] if ins.symbol.endswith("USDT") else ins.symbol
        tick, lot = str(ins.tick_size), str(ins.lot_size)
        syms.append({
            "symbol": ins.symbol, "pair": ins.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT",
            "pricePrecision": ins.price_decimals, "quantityPrecision": ins.qty_decimals,
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
            "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "4529764", "tickSize": tick},
                {"filterType": "LOT_SIZE", "stepSize": lot, "minQty": ins.lots_to_qty(ins.min_qty_lots),
                 "maxQty": ins.lots_to_qty(ins.max_qty_lots) if ins.max_qty_lots else "1000"},
                {"filterType": "MARKET_LOT_SIZE", "stepSize": lot, "minQty": ins.lots_to_qty(ins.min_qty_lots),
                 "maxQty": ins.lots_to_qty(ins.max_qty_lots) if ins.max_qty_lots else "1000"},
                {"filterType": "MAX_NUM_ORDERS", "limit": max_open_orders},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": ins.min_notional},
                {"filterType": "PERCENT_PRICE", "multiplierUp": ins.multiplier_up,
                 "multiplierDown": ins.multiplier_down, "multiplierDecimal": "4"}],
            "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]})
    return {"timezone": "UTC", "serverTime": now_ms, "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                            "limit": weight_per_minute},
                           {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}],
            "symbols": syms}
