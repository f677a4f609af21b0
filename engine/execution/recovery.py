"""Recovery: make the journal and the venue agree after a crash, a restart or a gap in
the user data stream.

``Recovery.from_journal(path, ...)`` reads what a restarted engine needs from its journal:
how many runs came before (each run gets its own block of client ids), each order's venue
id, the orders acknowledged and never ended, the trade ids already journaled. Then:

- ``recover()`` (before trading): orders of ours the venue still holds are cancelled
  (orphans of a run that died); fills nobody heard are journaled (``sync_fills``); orders
  whose end the journal never saw are looked up and their end journaled (EXEC records with
  qty 0: the end of the order, its fills are journaled separately);
- ``sync_fills()`` (also after a reconnect and at stop): every trade of ours in
  /fapi/v1/userTrades that the journal does not have becomes an EXEC record
  (``mono_recv`` 0);
- ``venue_positions()``: signed lots and entry price per instrument, the truth to seed the
  position book, the risk state and the strategies with;
- ``note_exec(e)``: the engine tells it every execution report it journals; returns False
  for a fill already journaled (recovered earlier), which must not be counted twice.
Every call to the venue retries what is transient (``BinanceRest.call_retry``).
"""
from __future__ import annotations

import logging

import numpy as np

from engine import schema
from engine.execution.gateway import VenueError
from engine.journal.journal import RK_EVENT, RK_EXEC, JournalReader

log = logging.getLogger("cryptoscalp.recovery")
ENDS = {schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT}
STATUS_KIND = {"FILLED": schema.EX_FILL, "CANCELED": schema.EX_CANCELED, "EXPIRED": schema.EX_EXPIRED,
               "REJECTED": schema.EX_REJECT}


class Recovery:
    def __init__(self, rest, gateway, journal, instruments, runs: int = 0, order_of=None, open_=None, trades=None):
        self.rest, self.gateway, self.journal = rest, gateway, journal
        self.instruments = list(instruments)
        self.runs = runs                                  # runs of this journal before this one
        self.order_of: dict = order_of or {}              # (inst, venue order id) -> client id
        self.open: dict = open_ or {}                     # client id -> (inst, venue order id), no end seen
        self.trades: set = trades or set()                # (inst, trade id) journaled

    @classmethod
    def from_journal(cls, path: str, rest, gateway, journal, instruments) -> "Recovery":
        runs = 0
        order_of, open_, trades = {}, {}, set()
        for e in JournalReader(path).entries():
            if e.kind == RK_EVENT:
                runs += e.record().get("event") == "start"
            elif e.kind == RK_EXEC:
                r = e.record()
                k, cid, inst, oid = int(r["kind"]), int(r["client_id"]), int(r["inst"]), int(r["exch_order_id"])
                if k == schema.EX_ACK and oid:
                    order_of[(inst, oid)] = cid
                    open_[cid] = (inst, oid)
                elif k in ENDS:
                    open_.pop(cid, None)
                if k in (schema.EX_FILL, schema.EX_PARTIAL) and int(r["qty"]):
                    trades.add((inst, int(r["trade_id"])))
        return cls(rest, gateway, journal, instruments, runs, order_of, open_, trades)

    def note_exec(self, e) -> bool:
        """Record what the engine journals; False: a fill already journaled (skip it)."""
        k, inst = int(e["kind"]), int(e["inst"])
        if k in (schema.EX_FILL, schema.EX_PARTIAL) and int(e["qty"]):
            key = (inst, int(e["trade_id"]))
            if key in self.trades:
                return False
            self.trades.add(key)
        elif k == schema.EX_ACK and int(e["exch_order_id"]):
            self.order_of[(inst, int(e["exch_order_id"]))] = int(e["client_id"])
        return True

    async def sync_fills(self) -> int:
        n = 0
        for ins in self.instruments:
            from_id = 0
            while True:
                trades = await self.rest.call_retry("GET", "/fapi/v1/userTrades",
                                                    {"symbol": ins.symbol, "fromId": from_id, "limit": 1000})
                for t in trades:
                    cid = self.order_of.get((ins.inst, int(t["orderId"])))
                    if cid is None or (ins.inst, int(t["id"])) in self.trades:
                        continue
                    e = np.zeros(1, schema.EXEC_DTYPE)
                    e["kind"], e["inst"], e["client_id"] = schema.EX_PARTIAL, ins.inst, cid
                    e["exch_order_id"] = int(t["orderId"])
                    e["side"] = schema.SIDE_BUY if t["side"] == "BUY" else schema.SIDE_SELL
                    e["liquidity"] = schema.LIQ_MAKER if t.get("maker") else schema.LIQ_TAKER
                    e["px"], e["qty"] = ins.price_to_ticks(t["price"]), ins.qty_to_lots(t["qty"])
                    e["fee"], e["trade_id"] = float(t["commission"]), int(t["id"])
                    e["exch_ts"] = int(t["time"]) * 1_000_000
                    self.journal.append_record(RK_EXEC, e)
                    self.trades.add((ins.inst, int(t["id"])))
                    n += 1
                if len(trades) < 1000:
                    break
                from_id = int(trades[-1]["id"]) + 1
        if n:
            self.journal.append_event({"event": "fills_recovered", "count": n})
        return n

    async def venue_positions(self) -> dict:
        """inst -> (signed lots, entry price in ticks) for our instruments."""
        out = {}
        for p in await self.rest.call_retry("GET", "/fapi/v2/positionRisk"):
            ins = self.gateway.by_symbol.get(p["symbol"])
            if ins is None:
                continue
            amt = p["positionAmt"]
            lots = ins.qty_to_lots(amt.lstrip("-")) * (-1 if amt.startswith("-") else 1)
            out[ins.inst] = (lots, float(p["entryPrice"]) / float(ins.tick_size) if lots else 0.0)
        return out

    async def recover(self) -> dict:
        orphans, foreign = [], []
        for v in await self.rest.call_retry("GET", "/fapi/v1/openOrders"):
            if self.gateway.parse_client_order_id(v.get("clientOrderId", "")) is None:
                foreign.append(v.get("clientOrderId"))
                continue
            try:
                await self.rest.call_retry("DELETE", "/fapi/v1/order", {"symbol": v["symbol"],
                                                                          "origClientOrderId": v["clientOrderId"]})
            except VenueError as e:
                if e.code != -2011:                 # -2011: gone meanwhile (filled, or the countdown cancelled it)
                    raise
            orphans.append(v["clientOrderId"])
        fills = await self.sync_fills()
        ended = {}
        by_inst = {i.inst: i for i in self.instruments}
        for cid, (inst, oid) in sorted(self.open.items()):
            cid_s = self.gateway.client_order_id(cid)
            try:
                q = await self.rest.call_retry("GET", "/fapi/v1/order", {"symbol": by_inst[inst].symbol,
                                                                         "origClientOrderId": cid_s})
                status = q.get("status")
            except Exception as ex:
                status = f"unknown ({ex})"
            kind = schema.EX_CANCELED if cid_s in orphans else STATUS_KIND.get(status)
            if kind is None:
                continue
            e = np.zeros(1, schema.EXEC_DTYPE)
            e["kind"], e["inst"], e["client_id"], e["exch_order_id"] = kind, inst, cid, oid
            self.journal.append_record(RK_EXEC, e)
            ended[cid_s] = status
        self.open.clear()
        if foreign:
            log.warning("the venue holds %d open orders that are not ours (left alone): %s", len(foreign), foreign[:5])
        return {"orphans_cancelled": orphans, "foreign_open_orders": len(foreign), "fills_recovered": fills,
                "orders_ended": ended}
