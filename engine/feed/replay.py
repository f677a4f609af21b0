"""Replay captures through the real parser, sync and book.

``book_replay`` is what ``cryptoscalp book-replay`` runs: one CSV row per applied depth
message, ``update_id,bid_px,bid_qty,ask_px,ask_qty``, decimal strings printed as the
exchange prints them.
"""
from __future__ import annotations

import csv
import heapq
import os
from typing import Iterator

import numpy as np
import orjson

from cext.binance import BinanceParser
from cext.book import BinanceBookSync, OrderBook
from engine import schema
from engine.feed.capture import iter_capture
from engine.venues.instruments import Instrument, infer_from_messages

SYNC_APPLIED = 1


class ReplayError(ValueError):
    """A capture that cannot be replayed faithfully (the message says where and why)."""


def capture_symbol(path: str, max_lines: int = 10000) -> str:
    """The symbol of a single-symbol capture: the ``s`` of its first event."""
    for k, (_, frame) in enumerate(iter_capture(path)):
        if k >= max_lines:
            break
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        data = msg.get("data", msg) if isinstance(msg, dict) else {}
        if isinstance(data, dict) and isinstance(data.get("s"), str):
            return data["s"]
    raise ReplayError(f"{path}: no symbol in the first {max_lines} lines; pass --symbol")


def infer_instruments(path: str, symbol: str | None = None, max_lines: int = 20000) -> list[Instrument]:
    """Instruments from the decimals printed in a capture (no exchange rules needed)."""
    symbol = symbol or capture_symbol(path)
    frames = (f for k, (_, f) in enumerate(iter_capture(path)) if k < max_lines)
    found = infer_from_messages(frames, default_symbol=symbol)
    if not any(i.symbol == symbol for i in found):
        raise ReplayError(f"{path}: no depth update or snapshot for {symbol} in the first {max_lines} lines")
    return found


def estimate_clock_offset(path: str, n: int = 5000) -> int:
    """Median of (exchange event time - local stamp) over the first n events, ns. The
    captures in ../shared/data were taken with a local clock ~1.27 s behind the exchange."""
    diffs = []
    for local, frame in iter_capture(path):
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        data = msg.get("data", msg) if isinstance(msg, dict) else {}
        e = data.get("E") if isinstance(data, dict) else None
        if isinstance(e, int):
            diffs.append(e * 1_000_000 - local)
            if len(diffs) >= n:
                break
    return int(np.median(diffs)) if diffs else 0


def merge_captures(paths: list[str]) -> Iterator[tuple[int, int, bytes]]:
    """(local_ns, file index, frame) across several captures, in local-time order (a stable
    merge: ties keep file order)."""
    def tagged(k: int, path: str):
        for ts, frame in iter_capture(path):
            yield ts, k, frame

    return heapq.merge(*(tagged(k, p) for k, p in enumerate(paths)), key=lambda t: (t[0], t[1]))


def iter_book(path: str, symbol: str | None = None, instruments: list[Instrument] | None = None,
              roi: int = 1 << 16, strict: bool = True):
    """Yield (status, records, book, sync) for every depth/snapshot message of ``symbol``
    in a capture, after it went through the parser and the sync. With ``strict`` a parser
    rejection raises ReplayError naming the line (a price printed finer than the scale
    is an error, not a rounding)."""
    symbol = symbol or capture_symbol(path)
    instruments = instruments or infer_instruments(path, symbol)
    by_sym = {i.symbol: i for i in instruments}
    if symbol not in by_sym:
        raise ReplayError(f"no instrument rules for {symbol}")
    ins = by_sym[symbol]
    parser = BinanceParser(instruments)
    book = OrderBook(ins.inst, roi)
    sync = BinanceBookSync(book)
    buf = np.zeros(8192, schema.MARKET_DTYPE)
    for lineno, (local, frame) in enumerate(iter_capture(path), 1):
        n = parser.parse(frame, local, buf, symbol)
        if n < 0:
            if strict:
                raise ReplayError(
                    f"{path}:{lineno}: {BinanceParser.reason_name(n)} at byte "
                    f"{parser.last_reject_offset}: {bytes(frame[:160])!r}"
                    + (f" (scales: price {ins.price_decimals} decimals, qty {ins.qty_decimals})"
                       if n in (-7, -8) else ""))
            continue
        recs = buf[:n]
        kind = int(recs["kind"][0])
        if kind not in (schema.MK_DEPTH, schema.MK_SNAPSHOT) or int(recs["inst"][0]) != ins.inst:
            continue
        status = sync.apply(recs)
        yield status, recs, book, sync
        if kind == schema.MK_SNAPSHOT:
            for msg in sync.take_pending():
                yield sync.apply(msg), msg, book, sync


def book_replay(path: str, out_path: str, symbol: str | None = None,
                instruments: list[Instrument] | None = None, progress=None) -> dict:
    """Write ``update_id,bid_px,bid_qty,ask_px,ask_qty`` per applied depth message."""
    symbol = symbol or capture_symbol(path)
    instruments = instruments or infer_instruments(path, symbol)
    ins = {i.symbol: i for i in instruments}[symbol]
    rows = 0
    counts: dict[int, int] = {}
    tmp = out_path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"])
        for status, recs, book, sync in iter_book(path, symbol, instruments):
            counts[status] = counts.get(status, 0) + 1
            if progress is not None:
                progress(1)
            if status != SYNC_APPLIED or int(recs["kind"][0]) != schema.MK_DEPTH:
                continue
            bb, ba = book.best_bid, book.best_ask
            w.writerow([sync.last_u,
                        ins.ticks_to_price(bb[0]) if bb else "", ins.lots_to_qty(bb[1]) if bb else "",
                        ins.ticks_to_price(ba[0]) if ba else "", ins.lots_to_qty(ba[1]) if ba else ""])
            rows += 1
    os.replace(tmp, out_path)
    names = {1: "applied", 2: "buffered", 3: "stale", 4: "waiting", -1: "gap", -2: "crossed"}
    return {"symbol": symbol, "rows": rows, "price_decimals": ins.price_decimals,
            "qty_decimals": ins.qty_decimals, **{names.get(k, str(k)): v for k, v in counts.items()}}
