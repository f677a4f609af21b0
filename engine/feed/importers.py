"""Importers: third-party order-book files -> MARKET_DTYPE records.

- Tardis.dev ``incremental_book_L2`` CSV:
  ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount`` (µs times;
  amount is the new absolute size, 0 deletes). Snapshot rows become MK_SNAPSHOT (the first
  of a snapshot block flagged F_CLEAR), the rest MK_DEPTH. Tardis carries no update ids:
  ``seq`` numbers the messages (rows sharing a timestamp and snapshot flag), and the
  records are applied with ``OrderBook.apply`` (they are already in sequence).
- Binance historical order book ``T_DEPTH`` CSV:
  ``symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu``
  (``snap`` rows -> MK_SNAPSHOT with seq = last_update_id; ``set`` rows -> MK_DEPTH with
  seq = last_update_id, aux = pu, aux2 = first_update_id), ready for BinanceBookSync.

Prices and sizes go through the instrument's exact decimal rules; instruments are inferred
from the decimals in the file unless given. A row that does not fit raises ImportError_
with its line number.
"""
from __future__ import annotations

import csv
from typing import Iterable

import numpy as np

from engine import schema
from engine.venues.instruments import Instrument, _decimals


class ImportError_(ValueError):
    """A row that cannot be imported exactly."""


def _open_text(path: str):
    import gzip
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rt", newline="") if magic == b"\x1f\x8b" else open(path, newline="")


def _infer(rows: Iterable[tuple[str, str, str]], first_inst: int, venue: str) -> list[Instrument]:
    dec: dict[str, list[int]] = {}
    for sym, px, qty in rows:
        d = dec.setdefault(sym, [0, 0])
        d[0] = max(d[0], _decimals(px))
        d[1] = max(d[1], _decimals(qty))
    return [Instrument(symbol=s, inst=first_inst + k, price_decimals=d[0], qty_decimals=d[1], venue=venue)
            for k, (s, d) in enumerate(dec.items())]


def _records(n: int) -> np.ndarray:
    return np.zeros(n, schema.MARKET_DTYPE)


def import_tardis_incremental(path: str, instruments: list[Instrument] | None = None,
                              first_inst: int = 0) -> tuple[np.ndarray, list[Instrument]]:
    with _open_text(path) as f:
        rows = list(csv.DictReader(f))
    need = {"exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"}
    if rows and not need <= set(rows[0]):
        raise ImportError_(f"{path}: not a Tardis incremental_book_L2 CSV (columns {sorted(rows[0])})")
    if instruments is None:
        instruments = _infer(((r["symbol"], r["price"], r["amount"]) for r in rows), first_inst,
                             rows[0]["exchange"] if rows else "tardis")
    by_sym = {i.symbol: i for i in instruments}
    out = _records(len(rows))
    msg = -1
    prev_key = None
    in_snapshot = False
    for k, r in enumerate(rows):
        line = k + 2
        ins = by_sym.get(r["symbol"])
        if ins is None:
            raise ImportError_(f"{path}:{line}: no instrument rules for {r['symbol']}")
        snap = r["is_snapshot"].strip().lower() == "true"
        key = (r["symbol"], r["timestamp"], snap)
        if key != prev_key:
            if k:
                out[k - 1]["flags"] |= schema.F_LAST_IN_MESSAGE
            msg += 1
        side = {"bid": schema.SIDE_BUY, "buy": schema.SIDE_BUY,
                "ask": schema.SIDE_SELL, "sell": schema.SIDE_SELL}.get(r["side"].strip().lower())
        if side is None:
            raise ImportError_(f"{path}:{line}: side {r['side']!r} is not bid/ask")
        try:
            px, qty = ins.price_to_ticks(r["price"]), ins.qty_to_lots(r["amount"])
            ts, local = int(r["timestamp"]) * 1000, int(r["local_timestamp"]) * 1000
        except ValueError as e:
            raise ImportError_(f"{path}:{line}: {e}") from None
        if px <= 0 or qty < 0:
            raise ImportError_(f"{path}:{line}: non-positive price or negative size")
        rec = out[k]
        rec["kind"] = schema.MK_SNAPSHOT if snap else schema.MK_DEPTH
        rec["side"] = side
        rec["inst"] = ins.inst
        rec["seq"] = msg
        rec["exch_ts"] = ts
        rec["mono_origin"] = local
        rec["px"] = px
        rec["qty"] = qty
        rec["aux"] = -1
        rec["aux2"] = msg
        if snap and not in_snapshot:
            rec["flags"] |= schema.F_CLEAR
        in_snapshot = snap
        prev_key = key
    if len(rows):
        out[-1]["flags"] |= schema.F_LAST_IN_MESSAGE
    return out, instruments


def import_binance_tdepth(path: str, instruments: list[Instrument] | None = None,
                          first_inst: int = 0) -> tuple[np.ndarray, list[Instrument]]:
    with _open_text(path) as f:
        rows = list(csv.DictReader(f))
    need = {"symbol", "timestamp", "first_update_id", "last_update_id", "side", "update_type", "price", "qty", "pu"}
    if rows and not need <= set(rows[0]):
        raise ImportError_(f"{path}: not a Binance T_DEPTH CSV (columns {sorted(rows[0])})")
    if instruments is None:
        instruments = _infer(((r["symbol"], r["price"], r["qty"]) for r in rows), first_inst, "binance-usdm")
    by_sym = {i.symbol: i for i in instruments}
    out = _records(len(rows))
    prev_key = None
    for k, r in enumerate(rows):
        line = k + 2
        ins = by_sym.get(r["symbol"])
        if ins is None:
            raise ImportError_(f"{path}:{line}: no instrument rules for {r['symbol']}")
        utype = r["update_type"].strip()
        if utype not in ("snap", "set"):
            raise ImportError_(f"{path}:{line}: update_type {utype!r} is not snap/set")
        side = {"b": schema.SIDE_BUY, "a": schema.SIDE_SELL}.get(r["side"].strip())
        if side is None:
            raise ImportError_(f"{path}:{line}: side {r['side']!r} is not a/b")
        try:
            px, qty = ins.price_to_ticks(r["price"]), ins.qty_to_lots(r["qty"])
            ts = int(r["timestamp"]) * 1_000_000
            first, last, pu = int(r["first_update_id"]), int(r["last_update_id"]), int(r["pu"])
        except ValueError as e:
            raise ImportError_(f"{path}:{line}: {e}") from None
        if px <= 0 or qty < 0:
            raise ImportError_(f"{path}:{line}: non-positive price or negative size")
        key = (r["symbol"], last, utype)
        if key != prev_key and k:
            out[k - 1]["flags"] |= schema.F_LAST_IN_MESSAGE
        rec = out[k]
        rec["kind"] = schema.MK_SNAPSHOT if utype == "snap" else schema.MK_DEPTH
        rec["side"] = side
        rec["inst"] = ins.inst
        rec["seq"] = last
        rec["exch_ts"] = ts
        rec["px"] = px
        rec["qty"] = qty
        rec["aux"] = pu
        rec["aux2"] = first
        if utype == "snap" and key != prev_key:
            rec["flags"] |= schema.F_CLEAR
        prev_key = key
    if len(rows):
        out[-1]["flags"] |= schema.F_LAST_IN_MESSAGE
    return out, instruments


def split_messages(recs: np.ndarray) -> list[np.ndarray]:
    """Split records into messages at F_LAST_IN_MESSAGE."""
    ends = np.flatnonzero(recs["flags"] & schema.F_LAST_IN_MESSAGE) + 1
    return [recs[a:b] for a, b in zip(np.r_[0, ends[:-1]], ends)]
