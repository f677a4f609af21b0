"""What the venue knows and this engine's journal may not: after a crash, a restart, or a
gap in the user data stream. ``VenueSync`` asks the venue (retrying what is transient)
and journals what was missing, so that the journal holds every order's life and every
fill exactly once; ``journal_memory`` reads what a restarted engine needs from its
journal. Used by the engine process (processes/fused.py); no state of its own beyond the
journal's memory it is given.
"""
from __future__ import annotations

import asyncio
import logging

import numpy as np

from engine import schema
from engine.execution.gateway import VenueError
from engine.journal.journal import RK_EXEC

log = logging.getLogger("cryptoscalp.recovery")


class VenueSync:
    def __init__(self, rest, gateway, journal, instruments, past: dict):
        """past: ``journal_memory``'s dict (order_of, open, trades), kept current by the
        engine as reports arrive."""
        self.rest, self.gateway, self.journal = rest, gateway, journal
        self.instruments = instruments
        self.by_inst = {i.inst: i for i in instruments}
        self.past = past

    async def call(self, method: str, path: str, params: dict | None = None, signed: bool = True, attempts: int = 6):
        """A REST call that retries what is transient (5xx, 429/418 after Retry-After, no
        response) with backoff; a 4xx answer is final and raised."""
        import aiohttp
        delay = 0.1
        for k in range(attempts):
            try:
                return await self.rest.call(method, path, params, signed)
            except VenueError as e:
                if e.status < 500 and e.status not in (429, 418) or k == attempts - 1:
                    raise
                await asyncio.sleep(max(delay, e.retry_after))
            except (aiohttp.ClientError, asyncio.TimeoutError):
                if k == attempts - 1:
                    raise
                await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    async def sync_fills(self) -> int:
        """Journal every trade of ours the venue has and the journal does not (fills whose
        user-stream event never arrived: a crash, a reconnect, a stop with a fill in flight).
        Returns how many were added. Positions are not touched (``positions`` gives the
        venue's)."""
        n = 0
        for ins in self.instruments:
            from_id = 0
            foreign: set[int] = set()
            while True:
                trades = await self.call("GET", "/fapi/v1/userTrades",
                                         {"symbol": ins.symbol, "fromId": from_id, "limit": 1000})
                for t in trades:
                    if (ins.inst, int(t["id"])) in self.past["trades"]:
                        continue
                    oid = int(t["orderId"])
                    cid = self.past["order_of"].get((ins.inst, oid))
                    if cid is None and oid not in foreign:
                        # an order the journal never saw: sent, then the engine died before
                        # it journaled the order (it does so after the write). The venue
                        # knows its client id: ours (our prefix) -> its fills are ours.
                        q = await self.call("GET", "/fapi/v1/order", {"symbol": ins.symbol, "orderId": oid})
                        cid = self.gateway.parse_client_order_id(q.get("clientOrderId", ""))
                        if cid is None:
                            foreign.add(oid)
                        else:
                            self.past["order_of"][(ins.inst, oid)] = cid
                    if cid is None:
                        continue
                    e = np.zeros(1, schema.EXEC_DTYPE)
                    e["kind"], e["inst"], e["client_id"], e["exch_order_id"] = schema.EX_PARTIAL, ins.inst, cid, int(t["orderId"])
                    e["side"] = schema.SIDE_BUY if t["side"] == "BUY" else schema.SIDE_SELL
                    e["liquidity"] = schema.LIQ_MAKER if t.get("maker") else schema.LIQ_TAKER
                    e["px"], e["qty"] = ins.price_to_ticks(t["price"]), ins.qty_to_lots(t["qty"])
                    e["fee"], e["trade_id"], e["exch_ts"] = float(t["commission"]), int(t["id"]), int(t["time"]) * 1_000_000
                    self.journal.append_record(RK_EXEC, e)
                    self.past["trades"].add((ins.inst, int(t["id"])))
                    n += 1
                if len(trades) < 1000:
                    break
                from_id = int(trades[-1]["id"]) + 1
        if n:
            self.journal.append_event({"event": "fills_recovered", "count": n})
        return n

    async def positions(self) -> list[tuple]:
        """The venue's positions: (instrument, signed lots, entry price in ticks)."""
        out = []
        for p in await self.call("GET", "/fapi/v2/positionRisk"):
            ins = self.gateway.by_symbol.get(p["symbol"])
            if ins is None:
                continue
            lots = ins.qty_to_lots(p["positionAmt"].lstrip("-")) * (-1 if p["positionAmt"].startswith("-") else 1)
            out.append((ins, lots, float(p["entryPrice"]) / float(ins.tick_size) if lots else 0.0))
        return out

    async def recover(self, seed_positions, unsure: dict | None = None, emit=None, event: str = "recovered") -> dict:
        """Before trading: at start (after a crash or a restart), and in the 4proc topology
        after the gateway process died:
        - orders of ours the venue still holds are cancelled;
        - orders the journal saw acknowledged but never saw end, and the ``unsure`` ones
          (client id -> instrument: sent while the gateway died, answer never seen) are
          looked up at the venue by client id and their end (filled, cancelled, expired;
          an unsure order the venue never had: REJECT -2013) is reported;
        - fills that happened while nobody listened (the user stream was down) are fetched
          from /fapi/v1/userTrades and journaled (EXEC records, ``mono_recv`` 0);
        - positions are taken from the venue: ``seed_positions`` (the engine's: the position
          book, the risk state, the strategy) is awaited and returns them by symbol, so that
          nobody trades as if flat.
        Ends go to ``emit`` (an EXEC record; default: the journal; the engine passes its
        ``on_exec`` when it runs with a position book that must see them too), after the
        fills. The journal then holds every order's life and every fill exactly once. The
        engine runs it at its stop too (``event``: what the journal's record is called)."""
        emit = emit or (lambda e: self.journal.append_record(RK_EXEC, np.asarray(e).reshape(1)))
        venue = await self.call("GET", "/fapi/v1/openOrders")
        orphans, foreign = [], []
        for v in venue:
            cid = self.gateway.parse_client_order_id(v.get("clientOrderId", ""))
            if cid is not None:
                try:
                    await self.call("DELETE", "/fapi/v1/order", {"symbol": v["symbol"],
                                                                 "origClientOrderId": v["clientOrderId"]})
                except VenueError as e:
                    if e.code != -2011:        # -2011: gone meanwhile (filled, or the countdown cancelled it)
                        raise
                orphans.append(v["clientOrderId"])
            else:
                foreign.append(v.get("clientOrderId"))
        look = {cid: (inst, oid) for cid, (inst, oid) in self.past["open"].items()}
        for cid, inst in (unsure or {}).items():
            look.setdefault(cid, (inst, 0))
        ended, ends, unresolved = {}, [], []
        for cid, (inst, oid) in sorted(look.items()):
            ins = self.by_inst[inst]
            cid_s = self.gateway.client_order_id(cid)
            try:
                q = await self.call("GET", "/fapi/v1/order", {"symbol": ins.symbol, "origClientOrderId": cid_s})
                status = q.get("status")
                if q.get("orderId") is not None:
                    oid = int(q["orderId"])
                    self.past["order_of"][(inst, oid)] = cid     # its fills, below, are ours
            except VenueError as ex:
                status = "NEVER_PLACED" if ex.code == -2013 and cid not in self.past["open"] else f"unknown ({ex})"
            except Exception as ex:
                status = f"unknown ({ex})"
            kind = {"FILLED": schema.EX_FILL, "CANCELED": schema.EX_CANCELED, "EXPIRED": schema.EX_EXPIRED,
                    "REJECTED": schema.EX_REJECT, "NEVER_PLACED": schema.EX_REJECT}.get(status)
            if cid_s in orphans:
                kind = schema.EX_CANCELED
            if kind is None:
                unresolved.append(cid_s)
                continue
            e = np.zeros(1, schema.EXEC_DTYPE)
            e["kind"], e["inst"], e["client_id"], e["exch_order_id"] = kind, inst, cid, oid
            if status == "NEVER_PLACED":
                e["reason"] = -2013
            ends.append(e[0])                                # qty 0: the end of the order, its fills come first
            ended[cid_s] = status
        recovered_fills = await self.sync_fills()
        for e in ends:
            self.past["open"].pop(int(e["client_id"]), None)
            emit(e)
        positions = await seed_positions()
        if foreign:
            log.warning("the venue holds %d open orders that are not ours (left alone): %s", len(foreign), foreign[:5])
        if unresolved:
            log.error("%d orders of ours the venue could not tell us about (left as they are): %s",
                      len(unresolved), unresolved[:5])
        rec = {"event": event, "orphans_cancelled": orphans, "foreign_open_orders": len(foreign),
               "positions_lots": positions, "fills_recovered": recovered_fills, "orders_ended": ended,
               "unsure": len(unsure or {}), "unresolved": unresolved}
        self.journal.append_event(rec)
        return rec


def journal_memory(path: str) -> tuple[int, dict]:
    """What a restarted engine needs from its journal: how many runs came before (client id
    blocks), which orders were acknowledged and never ended, each order's venue id, and the
    trade ids already journaled."""
    from engine.journal.journal import RK_EVENT as EV, JournalReader
    runs = 0
    order_of, open_, trades = {}, {}, set()
    for e in JournalReader(path).entries():
        if e.kind == EV:
            if e.record().get("event") == "start":
                runs += 1
        elif e.kind == RK_EXEC:
            r = e.record()
            k, cid, inst, oid = int(r["kind"]), int(r["client_id"]), int(r["inst"]), int(r["exch_order_id"])
            if k == schema.EX_ACK and oid:
                order_of[(inst, oid)] = cid
                open_[cid] = (inst, oid)
            elif k in (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT):
                open_.pop(cid, None)
            if k in (schema.EX_FILL, schema.EX_PARTIAL) and int(r["qty"]):
                trades.add((inst, int(r["trade_id"])))
    return runs, {"order_of": order_of, "open": open_, "trades": trades}
