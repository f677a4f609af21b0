"""A seeded synthetic market for the offline default: same seed, same stream.

The mid follows a random walk with GARCH(1,1)-like volatility clustering and occasional
jumps; the book has a one-tick spread most of the time (wider after jumps), level sizes
drawn from a log-normal that grows away from the touch; each step (every ``step_ms``) some
levels are replenished or cancelled, Poisson-many market orders arrive with log-normal
sizes, and walk the book (trades at the levels they take). Output: Binance USD-M
combined-stream frames (``depthUpdate`` with U/u/pu, ``bookTicker``, ``trade``,
``aggTrade``, ``markPriceUpdate`` every second) and the REST snapshot, so the same parser and book as
live consume it.
"""
from __future__ import annotations

import math

import numpy as np
import orjson

from engine.venues.instruments import Instrument


class SyntheticMarket:
    def __init__(self, ins: Instrument, seed: int = 1, start_px: float = 60_000.0, start_ms: int = 1_750_000_000_000,
                 step_ms: int = 100, levels: int = 50, vol_per_step: float = 2e-5, jump_prob: float = 0.0005,
                 jump_size: float = 0.004, trade_rate: float = 1.5):
        self.ins = ins
        self.rng = np.random.default_rng(seed)
        self.tick = float(ins.tick_size)
        self.mid_ticks = int(round(start_px / self.tick))
        self.t_ms = start_ms
        self.step_ms = step_ms
        self.levels = levels
        self.omega = vol_per_step ** 2 * 0.05
        self.alpha, self.beta = 0.10, 0.85
        self.var = vol_per_step ** 2
        self.jump_prob, self.jump_size = jump_prob, jump_size
        self.trade_rate = trade_rate
        self.u = 1_000_000
        self.trade_id = 1
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.sym = ins.symbol
        self.stream = ins.symbol.lower()
        self._fill_book(self.mid_ticks, spread=1)
        self.snapshot_u = self.u

    # ---------------------------------------------------------------- book
    def _size(self, k: int) -> int:
        lots = self.rng.lognormal(mean=math.log(20 + 8 * k), sigma=0.8)
        return max(1, int(lots))

    def _fill_book(self, mid: int, spread: int) -> dict:
        changed: dict = {}
        best_bid = mid - (spread // 2 or 1) if spread > 1 else mid
        best_ask = best_bid + spread
        for side, book, sign, best in ((1, self.bids, -1, best_bid), (2, self.asks, 1, best_ask)):
            # remove levels that crossed
            for p in [p for p in book if (side == 1 and p >= best_ask) or (side == 2 and p <= best_bid)]:
                del book[p]
                changed[(side, p)] = 0
            for k in range(self.levels):
                p = best + sign * k
                if p not in book or (k == 0 and book[p] == 0):
                    book[p] = self._size(k)
                    changed[(side, p)] = book[p]
            # trim far levels
            far = sorted(book, reverse=(side == 2))[: max(0, len(book) - self.levels * 2)]
            for p in far:
                del book[p]
                changed[(side, p)] = 0
        return changed

    def snapshot_frame(self) -> bytes:
        ins = self.ins
        return orjson.dumps({"lastUpdateId": self.u, "E": self.t_ms, "T": self.t_ms,
                             "bids": [[ins.ticks_to_price(p), ins.lots_to_qty(q)] for p, q in sorted(self.bids.items(), reverse=True)],
                             "asks": [[ins.ticks_to_price(p), ins.lots_to_qty(q)] for p, q in sorted(self.asks.items())]})

    # ---------------------------------------------------------------- one step
    def step(self) -> list[tuple[str, bytes]]:
        """Advance one step; returns [(stream, frame)] in publication order."""
        rng, ins = self.rng, self.ins
        self.t_ms += self.step_ms
        out: list[tuple[str, bytes]] = []
        # volatility clustering and jumps
        z = rng.standard_normal()
        ret = math.sqrt(self.var) * z
        jump = rng.random() < self.jump_prob
        if jump:
            ret += self.jump_size * (1 if rng.random() < 0.5 else -1)
        self.var = self.omega + self.alpha * ret * ret + self.beta * self.var
        move = int(round(ret * self.mid_ticks))
        spread = 1 if not jump and rng.random() < 0.9 else int(rng.integers(2, 6))
        changed: dict = {}
        trades = []
        # market orders walk the book toward the new mid
        n_trades = rng.poisson(self.trade_rate + abs(move) * 0.5)
        for _ in range(n_trades):
            buy = (rng.random() < 0.5 + (0.3 if move > 0 else -0.3 if move < 0 else 0.0))
            size = max(1, int(rng.lognormal(math.log(8), 1.0)))
            book = self.asks if buy else self.bids
            while size > 0 and book:
                p = min(book) if buy else max(book)
                take = min(size, book[p])
                trades.append((p, take, buy))
                book[p] -= take
                size -= take
                if book[p] == 0:
                    del book[p]
                changed[(2 if buy else 1, p)] = book.get(p, 0)
        self.mid_ticks += move
        # cancels and replenishment
        for side, book in ((1, self.bids), (2, self.asks)):
            for p in list(book)[: self.levels]:
                r = rng.random()
                if r < 0.05:
                    book[p] = max(1, book[p] + int(rng.integers(-book[p] // 2 - 1, book[p] // 2 + 2)))
                    changed[(side, p)] = book[p]
        changed.update(self._fill_book(self.mid_ticks, spread))
        # trades first (they happened), then the depth diff that results, then the ticker
        for p, q, buy in trades:
            out.append((f"{self.stream}@trade", orjson.dumps({"stream": f"{self.stream}@trade", "data": {
                "e": "trade", "E": self.t_ms, "T": self.t_ms, "s": self.sym, "t": self.trade_id,
                "p": ins.ticks_to_price(p), "q": ins.lots_to_qty(q), "X": "MARKET", "m": not buy}})))
            # one aggregate per trade here (each market order level is its own print)
            out.append((f"{self.stream}@aggTrade", orjson.dumps({"stream": f"{self.stream}@aggTrade", "data": {
                "e": "aggTrade", "E": self.t_ms, "a": self.trade_id, "s": self.sym, "p": ins.ticks_to_price(p),
                "q": ins.lots_to_qty(q), "f": self.trade_id, "l": self.trade_id, "T": self.t_ms, "m": not buy}})))
            self.trade_id += 1
        if changed:
            pu = self.u
            U = self.u + 1
            self.u += 1 + int(rng.integers(0, 3))
            b = [[ins.ticks_to_price(p), ins.lots_to_qty(q)] for (s, p), q in sorted(changed.items()) if s == 1]
            a = [[ins.ticks_to_price(p), ins.lots_to_qty(q)] for (s, p), q in sorted(changed.items()) if s == 2]
            out.append((f"{self.stream}@depth@0ms", orjson.dumps({"stream": f"{self.stream}@depth@0ms", "data": {
                "e": "depthUpdate", "E": self.t_ms, "T": self.t_ms, "s": self.sym, "U": U, "u": self.u, "pu": pu,
                "b": b, "a": a}})))
        bb, ba = max(self.bids), min(self.asks)
        out.append((f"{self.stream}@bookTicker", orjson.dumps({"stream": f"{self.stream}@bookTicker", "data": {
            "e": "bookTicker", "u": self.u, "s": self.sym, "b": ins.ticks_to_price(bb), "B": ins.lots_to_qty(self.bids[bb]),
            "a": ins.ticks_to_price(ba), "A": ins.lots_to_qty(self.asks[ba]), "T": self.t_ms, "E": self.t_ms}})))
        if self.t_ms % 1000 < self.step_ms:
            mid = (bb + ba) / 2 * self.tick
            out.append((f"{self.stream}@markPrice", orjson.dumps({"stream": f"{self.stream}@markPrice", "data": {
                "e": "markPriceUpdate", "E": self.t_ms, "s": self.sym, "p": f"{mid:.8f}", "i": f"{mid:.8f}",
                "P": f"{mid:.8f}", "r": "0.00010000", "T": (self.t_ms // 28_800_000 + 1) * 28_800_000}})))
        return out


def write_synthetic_capture(path: str, seconds: float, seed: int = 1, ins: Instrument | None = None,
                            start_ms: int = 1_750_000_000_000, feed_latency_ms: int = 2) -> int:
    """Write ``seconds`` of the synthetic market as a capture file (the shared captures'
    format: REST snapshot first; an existing file is overwritten; then combined-stream frames, each stamped with a local
    receive time ``feed_latency_ms`` after its exchange step). Returns the frame count.
    For training and backtests on longer data than the recorded captures."""
    from engine.feed.capture import CaptureWriter
    if ins is None:
        from engine.venues.sim.run import DEFAULT_BTC as ins
    g = SyntheticMarket(ins, seed=seed, start_ms=start_ms)
    n = 0
    open(path, "wb").close()            # overwrite: the writer appends
    with CaptureWriter(path) as w:
        w.write((start_ms + feed_latency_ms) * 1_000_000, g.snapshot_frame())
        for _ in range(int(seconds * 1000 / g.step_ms)):
            for _stream, frame in g.step():      # frames are combined-stream wrapped already
                w.write((g.t_ms + feed_latency_ms) * 1_000_000, frame)
                n += 1
    return n + 1
