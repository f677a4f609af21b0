"""SimExchange: Binance USD-M order semantics around the matching core and an account.

Everything here is synchronous and free of I/O; the server (engine.venues.sim.server)
turns HTTP and WebSocket traffic into these calls. Error codes and messages are
Binance's (USD-M futures "Error codes" page); responses have Binance's field names.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np

from cext.binance import BinanceParser
from cext.matching import (SUBMIT_EXPIRED, SUBMIT_FILLED, SUBMIT_NO_SLOT, SUBMIT_POST_ONLY_REJECTED,
                           SUBMIT_RESTING, MatchingEngine)
from engine import schema
from engine.venues.instruments import Instrument
from engine.venues.sim.accounts import Account


class BinanceError(Exception):
    """An API error as Binance returns it: HTTP status, code, message."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


SIDES = {"BUY": schema.SIDE_BUY, "SELL": schema.SIDE_SELL}
SIDE_NAMES = {v: k for k, v in SIDES.items()}


@dataclass
class SimOrder:
    order_id: int
    symbol: str
    inst: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: int                   # ticks (0 for MARKET)
    qty: int                     # lots
    reduce_only: bool
    time_ms: int
    status: str = "NEW"
    executed: int = 0
    cum_quote: float = 0.0
    update_ms: int = 0


@dataclass
class SimExchange:
    instruments: list[Instrument]
    balance: float = 100_000.0
    clock_ms: callable = field(default=lambda: time.time_ns() // 1_000_000)
    max_open_orders: int = 200
    _mark_from_stream: set = field(default_factory=set)

    def __post_init__(self):
        self.by_symbol = {i.symbol: i for i in self.instruments}
        self.by_inst = {i.inst: i for i in self.instruments}
        n = max(self.by_inst) + 1
        self.engine = MatchingEngine(n, max_orders=4096)
        self.parser = BinanceParser(self.instruments)
        self.account = Account(self.balance, {i.inst: float(i.tick_size * i.lot_size) for i in self.instruments})
        self.orders: dict[int, SimOrder] = {}
        self.trades: list[dict] = []          # our account's fills, for /fapi/v1/userTrades
        self.by_client: dict[tuple[str, str], int] = {}
        self._ids = itertools.count(8_000_000_000)
        self._cids = itertools.count(1)
        self.marks: dict[int, int] = {}
        self.index: dict[int, int] = {}
        self.funding_rate: dict[int, float] = {i.inst: 0.0001 for i in self.instruments}
        self.next_funding_ms: dict[int, int] = {}
        self.last_update_id: dict[int, int] = {}
        self.last_event_ms = 0
        self.user_events: list[dict] = []        # to deliver on user data streams
        self.countdowns: dict[str, int] = {}     # symbol -> deadline ms (dead man's switch)
        self.trade_ids = itertools.count(1)
        self._buf = np.zeros(8192, schema.MARKET_DTYPE)

    # ---------------------------------------------------------------- market data in
    def on_market_frame(self, frame: bytes, default_symbol: str | None = None) -> int:
        """A market frame (raw Binance JSON, any kind the parser reads): update the book,
        match our orders, marks, funding. Returns records applied (0 if rejected)."""
        n = self.parser.parse(frame, 0, self._buf, default_symbol)
        if n <= 0:
            return 0
        recs = self._buf[:n]
        self.on_records(recs)
        return n

    def on_records(self, recs: np.ndarray) -> None:
        self.engine.on_market(recs)
        kind = recs["kind"]
        ts_ms = int(recs["exch_ts"].max()) // 1_000_000
        if ts_ms > self.last_event_ms:
            self.last_event_ms = ts_ms
        book = (kind == schema.MK_DEPTH) | (kind == schema.MK_SNAPSHOT)
        if book.any():
            r = recs[book][-1]
            self.last_update_id[int(r["inst"])] = int(r["seq"])
        for r in recs[(kind == schema.MK_MARK) | (kind == schema.MK_FUNDING)]:
            inst = int(r["inst"])
            if r["kind"] == schema.MK_MARK:
                self.marks[inst] = int(r["px"])
                if r["aux"]:
                    self.index[inst] = int(r["aux"])
            else:
                self.funding_rate[inst] = int(r["aux2"]) / 1e9
                self.next_funding_ms[inst] = int(r["aux"]) // 1_000_000
        # without a mark-price stream, the mid is the mark
        if (recs["kind"] == schema.MK_MARK).any():
            self._mark_from_stream.update(int(i) for i in recs["inst"][recs["kind"] == schema.MK_MARK])
        for inst in (int(recs["inst"][0]),) if len(recs) else ():
            if inst not in self._mark_from_stream:
                b = self.engine.book(inst)
                if b.best_bid and b.best_ask:
                    self.marks[inst] = (b.best_bid[0] + b.best_ask[0]) // 2
        self._settle()

    def _settle(self) -> None:
        """Turn the engine's execution records into order updates, account changes and
        user-data events; then liquidation and the dead man's switch."""
        now = self.now_ms()
        if self.engine.n_exec:
            for e in self.engine.drain():
                self._apply_exec(e, now)
        if not self.countdowns and not self.account.positions:
            return
        for inst, q, mark in self.account.liquidate_if_needed(self.marks):
            self._cancel_all_inst(inst, now, reason="liquidation")
            self.user_events.append(self._account_update(now, "ORDER"))
        for sym, deadline in list(self.countdowns.items()):
            if now >= deadline:
                del self.countdowns[sym]
                self._cancel_all_inst(self.by_symbol[sym].inst, now, reason="countdown")

    def now_ms(self) -> int:
        return max(self.clock_ms(), self.last_event_ms)

    def funding(self, now_ms: int) -> list[tuple[str, float]]:
        """Apply funding for every instrument whose funding time has come (every 8 h at
        00:00/08:00/16:00 UTC when no funding stream says otherwise)."""
        paid = []
        for ins in self.instruments:
            nxt = self.next_funding_ms.get(ins.inst)
            if nxt is None:
                nxt = self.next_funding_ms[ins.inst] = (now_ms // 28_800_000 + 1) * 28_800_000
            if now_ms >= nxt:
                mark = self.marks.get(ins.inst, 0)
                pay = self.account.apply_funding(ins.inst, mark, self.funding_rate[ins.inst])
                self.next_funding_ms[ins.inst] = nxt + 28_800_000
                if pay:
                    paid.append((ins.symbol, pay))
                    self.user_events.append(self._account_update(now_ms, "FUNDING_FEE"))
        return paid

    # ---------------------------------------------------------------- orders
    def _parse_qty(self, ins: Instrument, s) -> int:
        if s is None:
            raise BinanceError(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        try:
            d = Decimal(str(s))
        except InvalidOperation:
            raise BinanceError(-1100, f"Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")
        if d <= 0:
            raise BinanceError(-4003, "Quantity less than or equal to zero.")
        units = d.scaleb(ins.qty_decimals)
        if units != units.to_integral_value():
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        units = int(units)
        if units % ins.lot_units:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        lots = units // ins.lot_units
        if lots < ins.min_qty_lots or (ins.max_qty_lots and lots > ins.max_qty_lots):
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        return lots

    def _parse_price(self, ins: Instrument, s) -> int:
        if s is None:
            raise BinanceError(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        try:
            d = Decimal(str(s))
        except InvalidOperation:
            raise BinanceError(-1100, "Illegal characters found in parameter 'price'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        if d <= 0:
            raise BinanceError(-4001, "Price less than 0.")
        units = d.scaleb(ins.price_decimals)
        if units != units.to_integral_value():
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        units = int(units)
        if units % ins.tick_units:
            raise BinanceError(-4014, "Price not increased by tick size.")
        return units // ins.tick_units

    def instrument(self, symbol) -> Instrument:
        ins = self.by_symbol.get(str(symbol or "").upper())
        if ins is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return ins

    def new_order(self, p: dict) -> dict:
        now = self.now_ms()
        ins = self.instrument(p.get("symbol"))
        side = str(p.get("side", "")).upper()
        if side not in SIDES:
            raise BinanceError(-1117, "Invalid side.")
        otype = str(p.get("type", "")).upper()
        if otype not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        tif = str(p.get("timeInForce", "GTC" if otype == "LIMIT" else "")).upper()
        if otype == "LIMIT" and tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        if str(p.get("positionSide", "BOTH")).upper() != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        lots = self._parse_qty(ins, p.get("quantity"))
        px = self._parse_price(ins, p.get("price")) if otype == "LIMIT" else 0
        reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
        cid = p.get("newClientOrderId") or f"sim{next(self._cids)}"
        if not (1 <= len(cid) <= 36) or not all(c.isalnum() or c in ".:/_-" for c in cid):
            raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        if (ins.symbol, cid) in self.by_client and self.orders[self.by_client[(ins.symbol, cid)]].status in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        mark = self.marks.get(ins.inst, 0)
        b = self.engine.book(ins.inst)
        ref_px = px or (b.best_ask[0] if side == "BUY" and b.best_ask else b.best_bid[0] if b.best_bid else mark)
        if otype == "MARKET" and not ref_px:
            raise BinanceError(-2020, "Unable to fill.")
        notional = lots * ref_px * self.account.value[ins.inst]
        if not reduce_only and Decimal(str(notional)) < Decimal(ins.min_notional):
            raise BinanceError(-4164, f"Order's notional must be no smaller than {ins.min_notional} (unless you choose reduce only).")
        if otype == "LIMIT" and mark and Decimal(ins.multiplier_up) > 0:
            if px > mark * float(ins.multiplier_up):
                raise BinanceError(-4016, f"Limit price can't be higher than {ins.ticks_to_price(int(mark * float(ins.multiplier_up)))}.")
            if px < mark * float(ins.multiplier_down):
                raise BinanceError(-4024, f"Limit price can't be lower than {ins.ticks_to_price(int(mark * float(ins.multiplier_down)) + 1)}.")
        pos = self.account.pos(ins.inst).qty
        dq = lots if side == "BUY" else -lots
        if reduce_only and (pos == 0 or (pos > 0) == (dq > 0) or abs(dq) > abs(pos)):
            raise BinanceError(-2022, "ReduceOnly Order is rejected.")
        increases = pos == 0 or (pos > 0) == (dq > 0) or abs(dq) > abs(pos)
        if increases:
            marks = dict(self.marks)
            if self.account.available(marks, self._open_order_notional()) < notional / self.account.pos(ins.inst).leverage:
                raise BinanceError(-2019, "Margin is insufficient.")
        if sum(1 for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")) >= self.max_open_orders:
            raise BinanceError(-4025, "Exceeded the maximum allowable number of open orders.")
        oid = next(self._ids)
        o = SimOrder(oid, ins.symbol, ins.inst, cid, side, otype, tif if otype == "LIMIT" else "GTC", px, lots,
                     reduce_only, now, update_ms=now)
        mtype = {"GTC": schema.OT_LIMIT, "GTX": schema.OT_POST_ONLY, "IOC": schema.OT_IOC,
                 "FOK": schema.OT_FOK}.get(tif, schema.OT_LIMIT) if otype == "LIMIT" else schema.OT_MARKET
        res = self.engine.submit(oid, oid, ins.inst, SIDES[side], mtype, px, lots,
                                 schema.OF_REDUCE_ONLY if reduce_only else 0, now * 1_000_000)
        if res == SUBMIT_POST_ONLY_REJECTED:
            raise BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")
        if res == SUBMIT_NO_SLOT:
            raise BinanceError(-4025, "Exceeded the maximum allowable number of open orders.")
        self.orders[oid] = o
        self.by_client[(ins.symbol, cid)] = oid
        self.user_events.append(self._order_update(o, "NEW", now))
        self._settle()
        if res == SUBMIT_EXPIRED and o.status in ("NEW", "PARTIALLY_FILLED"):
            o.status = "EXPIRED"
        return self.order_json(o)

    def _open_order_notional(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for o in self.orders.values():
            if o.status in ("NEW", "PARTIALLY_FILLED") and o.type == "LIMIT":
                out[o.inst] = out.get(o.inst, 0) + (o.qty - o.executed) * o.price
        return out

    def _apply_exec(self, e, now: int) -> None:
        o = self.orders.get(int(e["exch_order_id"]))
        kind = int(e["kind"])
        if o is None:
            return
        if kind in (schema.EX_PARTIAL, schema.EX_FILL):
            q, px = int(e["qty"]), int(e["px"])
            maker = int(e["liquidity"]) == schema.LIQ_MAKER
            realized, fee = self.account.on_fill(o.inst, SIDES[o.side], px, q, maker)
            o.executed += q
            o.cum_quote += q * px * self.account.value[o.inst]
            o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
            o.update_ms = now
            # our account's trade id: the same number in ORDER_TRADE_UPDATE ("t") and in
            # /fapi/v1/userTrades ("id"), as on Binance
            tid = len(self.trades) + 1
            self.user_events.append(self._order_update(o, "TRADE", now, last_px=px, last_qty=q, fee=fee,
                                                       maker=maker, realized=realized, trade_id=tid))
            ins = self.by_inst[o.inst]
            self.trades.append({"symbol": ins.symbol, "id": tid, "orderId": o.order_id,
                                "side": o.side, "price": ins.ticks_to_price(px), "qty": ins.lots_to_qty(q),
                                "realizedPnl": f"{realized:.8f}", "quoteQty": f"{q * px * self.account.value[o.inst]:.8f}",
                                "commission": f"{fee:.8f}", "commissionAsset": "USDT", "time": now,
                                "positionSide": "BOTH", "maker": maker, "buyer": o.side == "BUY"})
            self.user_events.append(self._account_update(now, "ORDER"))
        elif kind == schema.EX_CANCELED:
            o.status, o.update_ms = "CANCELED", now
            self.user_events.append(self._order_update(o, "CANCELED", now))
        elif kind == schema.EX_EXPIRED:
            o.status, o.update_ms = "EXPIRED", now
            self.user_events.append(self._order_update(o, "EXPIRED", now))

    def user_trades(self, p: dict) -> list[dict]:
        """GET /fapi/v1/userTrades: symbol (required), fromId, limit (default 500, max 1000)."""
        ins = self.instrument(p.get("symbol"))
        limit = int(p.get("limit", 500))
        if not 1 <= limit <= 1000:
            raise BinanceError(-1130, "Data sent for paramter 'limit' is not valid.")
        from_id = int(p.get("fromId", 0))
        out = [t for t in self.trades if t["symbol"] == ins.symbol and t["id"] >= from_id]
        return out[:limit]

    def _find(self, ins: Instrument, p: dict) -> SimOrder:
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if oid is None and cid is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if oid is not None:
            o = self.orders.get(int(oid))
        else:
            o = self.orders.get(self.by_client.get((ins.symbol, cid), -1))
        if o is None or o.symbol != ins.symbol:
            raise BinanceError(-2013, "Order does not exist.")
        return o

    def cancel_order(self, p: dict) -> dict:
        ins = self.instrument(p.get("symbol"))
        try:
            o = self._find(ins, p)
        except BinanceError as e:
            if e.code == -2013:
                raise BinanceError(-2011, "Unknown order sent.")
            raise
        if o.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(-2011, "Unknown order sent.")
        self.engine.cancel(o.order_id, self.now_ms() * 1_000_000)
        self._settle()
        return self.order_json(o)

    def query_order(self, p: dict) -> dict:
        return self.order_json(self._find(self.instrument(p.get("symbol")), p))

    def open_orders(self, p: dict) -> list[dict]:
        sym = p.get("symbol")
        inst = self.instrument(sym).inst if sym else None
        return [self.order_json(o) for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and (inst is None or o.inst == inst)]

    def cancel_all(self, p: dict) -> dict:
        ins = self.instrument(p.get("symbol"))
        self._cancel_all_inst(ins.inst, self.now_ms())
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _cancel_all_inst(self, inst: int, now: int, reason: str = "") -> int:
        n = 0
        for o in list(self.orders.values()):
            if o.inst == inst and o.status in ("NEW", "PARTIALLY_FILLED"):
                self.engine.cancel(o.order_id, now * 1_000_000)
                n += 1
        for e in self.engine.drain():
            self._apply_exec(e, now)
        return n

    def countdown_cancel_all(self, p: dict) -> dict:
        ins = self.instrument(p.get("symbol"))
        try:
            ms = int(p.get("countdownTime"))
        except (TypeError, ValueError):
            raise BinanceError(-1102, "Mandatory parameter 'countdownTime' was not sent, was empty/null, or malformed.")
        if ms == 0:
            self.countdowns.pop(ins.symbol, None)
        else:
            self.countdowns[ins.symbol] = self.now_ms() + ms
        return {"symbol": ins.symbol, "countdownTime": str(ms)}

    def set_leverage(self, p: dict) -> dict:
        ins = self.instrument(p.get("symbol"))
        try:
            lev = int(p.get("leverage"))
        except (TypeError, ValueError):
            raise BinanceError(-1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.")
        if not 1 <= lev <= 125:
            raise BinanceError(-4028, "Leverage is not valid.")
        self.account.pos(ins.inst).leverage = lev
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": ins.symbol}

    # ---------------------------------------------------------------- JSON shapes
    def order_json(self, o: SimOrder) -> dict:
        ins = self.by_symbol[o.symbol]
        avg = o.cum_quote / (o.executed * self.account.value[o.inst]) if o.executed else 0.0
        return {"orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_order_id,
                "price": ins.ticks_to_price(o.price), "avgPrice": f"{avg * float(ins.tick_size):.{ins.price_decimals + 3}f}" if o.executed else "0.00",
                "origQty": ins.lots_to_qty(o.qty), "executedQty": ins.lots_to_qty(o.executed),
                "cumQty": ins.lots_to_qty(o.executed), "cumQuote": f"{o.cum_quote:.5f}",
                "timeInForce": o.time_in_force, "type": o.type, "reduceOnly": o.reduce_only, "closePosition": False,
                "side": o.side, "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
                "priceProtect": False, "origType": o.type, "priceMatch": "NONE", "selfTradePreventionMode": "NONE",
                "goodTillDate": 0, "time": o.time_ms, "updateTime": o.update_ms}

    def _order_update(self, o: SimOrder, exec_type: str, now: int, last_px=0, last_qty=0, fee=0.0,
                      maker=False, realized=0.0, trade_id=0) -> dict:
        ins = self.by_symbol[o.symbol]
        avg = o.cum_quote / (o.executed * self.account.value[o.inst]) if o.executed else 0.0
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {
            "s": o.symbol, "c": o.client_order_id, "S": o.side, "o": o.type, "f": o.time_in_force,
            "q": ins.lots_to_qty(o.qty), "p": ins.ticks_to_price(o.price),
            "ap": f"{avg * float(ins.tick_size):.{ins.price_decimals + 3}f}" if o.executed else "0",
            "sp": "0", "x": exec_type, "X": o.status, "i": o.order_id,
            "l": ins.lots_to_qty(last_qty), "z": ins.lots_to_qty(o.executed),
            "L": ins.ticks_to_price(last_px) if last_px else "0", "N": "USDT", "n": f"{fee:.8f}",
            "T": now, "t": trade_id, "b": "0", "a": "0", "m": maker, "R": o.reduce_only, "wt": "CONTRACT_PRICE",
            "ot": o.type, "ps": "BOTH", "cp": False, "rp": f"{realized:.8f}", "pP": False, "si": 0, "ss": 0,
            "V": "NONE", "pm": "NONE", "gtd": 0}}

    def _account_update(self, now: int, reason: str) -> dict:
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
            "m": reason,
            "B": [{"a": "USDT", "wb": f"{self.account.balance:.8f}", "cw": f"{self.account.balance:.8f}", "bc": "0"}],
            "P": [self._position_json(i, short=True) for i in self.account.positions]}}

    def _position_json(self, inst: int, short: bool = False) -> dict:
        ins = self.by_inst[inst]
        p = self.account.pos(inst)
        mark = self.marks.get(inst, 0)
        up = self.account.unrealized(inst, mark)
        if short:
            return {"s": ins.symbol, "pa": ins.lots_to_qty(p.qty), "ep": ins.ticks_to_price(int(round(p.entry))),
                    "bep": "0", "cr": f"{p.realized:.8f}", "up": f"{up:.8f}", "mt": "cross", "iw": "0", "ps": "BOTH"}
        notional = p.qty * mark * self.account.value[inst]
        return {"symbol": ins.symbol, "positionAmt": ins.lots_to_qty(p.qty),
                "entryPrice": f"{p.entry * float(ins.tick_size):.{ins.price_decimals}f}", "breakEvenPrice": "0.0",
                "markPrice": ins.ticks_to_price(mark), "unRealizedProfit": f"{up:.8f}",
                "liquidationPrice": "0", "leverage": str(p.leverage), "maxNotionalValue": "1000000",
                "marginType": "cross", "isolatedMargin": "0.00000000", "isAutoAddMargin": "false",
                "positionSide": "BOTH", "notional": f"{notional:.8f}", "isolatedWallet": "0", "updateTime": self.now_ms(),
                "initialMargin": f"{abs(notional) / p.leverage:.8f}", "maintMargin": f"{abs(notional) * self.account.maint_rate:.8f}",
                "positionInitialMargin": f"{abs(notional) / p.leverage:.8f}", "openOrderInitialMargin": "0",
                "adl": 0, "bidNotional": "0", "askNotional": "0"}

    def account_json(self) -> dict:
        marks = self.marks
        mb = self.account.margin_balance(marks)
        im = self.account.initial_margin(marks, self._open_order_notional())
        up = mb - self.account.balance
        bal = f"{self.account.balance:.8f}"
        asset = {"asset": "USDT", "walletBalance": bal, "unrealizedProfit": f"{up:.8f}", "marginBalance": f"{mb:.8f}",
                 "maintMargin": f"{self.account.maintenance(marks):.8f}", "initialMargin": f"{im:.8f}",
                 "positionInitialMargin": f"{self.account.initial_margin(marks):.8f}",
                 "openOrderInitialMargin": f"{im - self.account.initial_margin(marks):.8f}",
                 "crossWalletBalance": bal, "crossUnPnl": f"{up:.8f}", "availableBalance": f"{mb - im:.8f}",
                 "maxWithdrawAmount": f"{max(0.0, mb - im):.8f}", "marginAvailable": True, "updateTime": self.now_ms()}
        return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
                "multiAssetsMargin": False, "tradeGroupId": -1,
                "totalInitialMargin": asset["initialMargin"], "totalMaintMargin": asset["maintMargin"],
                "totalWalletBalance": bal, "totalUnrealizedProfit": asset["unrealizedProfit"],
                "totalMarginBalance": asset["marginBalance"], "totalPositionInitialMargin": asset["positionInitialMargin"],
                "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"], "totalCrossWalletBalance": bal,
                "totalCrossUnPnl": asset["crossUnPnl"], "availableBalance": asset["availableBalance"],
                "maxWithdrawAmount": asset["maxWithdrawAmount"], "assets": [asset],
                "positions": [self._position_json(i) for i in self.by_inst]}

    def balance_json(self) -> list[dict]:
        a = self.account_json()["assets"][0]
        return [{"accountAlias": "SimAccount", "asset": "USDT", "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": self.now_ms()}]

    def position_risk_json(self, symbol=None) -> list[dict]:
        insts = [self.instrument(symbol).inst] if symbol else list(self.by_inst)
        return [self._position_json(i) for i in insts]

    def depth_json(self, symbol, limit: int = 500) -> dict:
        ins = self.instrument(symbol)
        b = self.engine.book(ins.inst)
        bp, bq = b.levels(1, limit)
        ap, aq = b.levels(2, limit)
        now = self.now_ms()
        return {"lastUpdateId": self.last_update_id.get(ins.inst, 0), "E": now, "T": now,
                "bids": [[ins.ticks_to_price(int(p)), ins.lots_to_qty(int(q))] for p, q in zip(bp, bq)],
                "asks": [[ins.ticks_to_price(int(p)), ins.lots_to_qty(int(q))] for p, q in zip(ap, aq)]}

    def book_ticker_json(self, symbol) -> dict:
        ins = self.instrument(symbol)
        b = self.engine.book(ins.inst)
        bb, ba = b.best_bid or (0, 0), b.best_ask or (0, 0)
        return {"symbol": ins.symbol, "bidPrice": ins.ticks_to_price(bb[0]), "bidQty": ins.lots_to_qty(bb[1]),
                "askPrice": ins.ticks_to_price(ba[0]), "askQty": ins.lots_to_qty(ba[1]), "time": self.now_ms(),
                "lastUpdateId": self.last_update_id.get(ins.inst, 0)}

    def premium_index_json(self, symbol) -> dict:
        ins = self.instrument(symbol)
        mark = self.marks.get(ins.inst, 0)
        nxt = self.next_funding_ms.get(ins.inst) or (self.now_ms() // 28_800_000 + 1) * 28_800_000
        return {"symbol": ins.symbol, "markPrice": ins.ticks_to_price(mark),
                "indexPrice": ins.ticks_to_price(self.index.get(ins.inst, mark)),
                "estimatedSettlePrice": ins.ticks_to_price(mark),
                "lastFundingRate": f"{self.funding_rate[ins.inst]:.8f}", "interestRate": "0.00010000",
                "nextFundingTime": nxt, "time": self.now_ms()}
