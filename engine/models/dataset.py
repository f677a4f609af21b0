"""Training rows from recordings: the same feature kernel as live, sampled, labelled.

Rows. A capture is replayed through the feed handler (``message_table``) and the batch
feature path (``batch_features``): the features after every message, exactly what the
brain would have seen. Rows are then sampled

- on a clock (default, ``sample_ms=100``): at each grid time g (every 100 ms of exchange
  time from the first message whose 25 features are all ready), the features after the
  last message with time <= g;
- or on events (``sample_ms=0``): after every message once all features are ready.

Labels. Three classes from the future mid move over ``horizon_s`` (default 10 s):
r = log(mid(t + H) / mid(t)), where mid(x) is the mid after the last message at or
before x. ``up`` (2) if r > thr, ``down`` (0) if r < -thr, else ``flat`` (1). The
threshold covers round-trip fees: by default 4 bps, a maker entry and a maker exit at
Binance's base maker fee (2 bps each), plus ``extra_bps`` (0). A row whose t + H lies
beyond the recording's last message has no label and is dropped.

No lookahead. A row's features use messages up to t only (the kernel is causal and the
row takes the state after the last message <= t); the label is the only thing that reads
(t, t + H]. ``label_end`` (t + H) is kept per row so that splits can purge training rows
whose label window overlaps a test row (``engine.models.splits``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.features.vector import N_FEATURES, NAMES

DOWN, FLAT, UP = 0, 1, 2
CLASS_NAMES = ("down", "flat", "up")
I_BID, I_ASK = NAMES.index("best_bid"), NAMES.index("best_ask")


@dataclass
class LabelSpec:
    horizon_s: float = 10.0
    fee_bps: float = 2.0          # per side (Binance USD-M VIP0 maker)
    extra_bps: float = 0.0        # added on top of the round trip (slippage allowance)
    sample_ms: int = 100          # 0 = one row per message

    @property
    def threshold(self) -> float:
        """Log-return threshold: a round trip of fees plus the allowance."""
        return (2.0 * self.fee_bps + self.extra_bps) * 1e-4

    def to_dict(self) -> dict:
        return {"horizon_s": self.horizon_s, "fee_bps": self.fee_bps, "extra_bps": self.extra_bps,
                "sample_ms": self.sample_ms, "threshold_bps": self.threshold * 1e4}


@dataclass
class Rows:
    X: np.ndarray                 # [n, 25] float32 features
    y: np.ndarray                 # [n] int64 class
    t: np.ndarray                 # [n] int64 exchange time of the row (ns)
    label_end: np.ndarray         # [n] int64 t + H (ns)
    ret: np.ndarray               # [n] float64 realised log return over the horizon
    source: list = field(default_factory=list)   # (path, symbol, first row, n rows)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx) -> "Rows":
        return Rows(self.X[idx], self.y[idx], self.t[idx], self.label_end[idx], self.ret[idx], self.source)


def label_returns(ret: np.ndarray, threshold: float) -> np.ndarray:
    y = np.full(len(ret), FLAT, np.int64)
    y[ret > threshold] = UP
    y[ret < -threshold] = DOWN
    return y


def rows_from_features(values: np.ndarray, ready: np.ndarray, times: np.ndarray, spec: LabelSpec):
    """Sample and label one recording's feature matrix (messages in arrival order).

    Returns (X, y, t, label_end, ret). Times are made non-decreasing first (exchange
    stamps of different streams can be a millisecond out of order)."""
    times = np.maximum.accumulate(times.astype(np.int64))
    all_ready = ready.all(axis=1)
    mid = 0.5 * (values[:, I_BID] + values[:, I_ASK])
    ok = np.flatnonzero(all_ready)
    if len(ok) == 0:
        return _empty()
    H = int(spec.horizon_s * 1e9)
    if spec.sample_ms > 0:
        step = int(spec.sample_ms) * 1_000_000
        g0 = times[ok[0]]
        grid = np.arange(g0, times[-1] - H + 1, step, dtype=np.int64)
        src = np.searchsorted(times, grid, side="right") - 1       # last message <= g
        t = grid
    else:
        src = ok[times[ok] + H <= times[-1]]
        t = times[src]
    src_ok = all_ready[src]
    src, t = src[src_ok], t[src_ok]
    fut = np.searchsorted(times, t + H, side="right") - 1          # last message <= t + H
    fut_ok = all_ready[fut]                                         # a valid book then
    src, t, fut = src[fut_ok], t[fut_ok], fut[fut_ok]
    ret = np.log(mid[fut] / mid[src])
    return (values[src].astype(np.float32), label_returns(ret, spec.threshold), t, t + H, ret)


def _empty():
    return (np.zeros((0, N_FEATURES), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0, np.int64), np.zeros(0))


def build_rows(paths, spec: LabelSpec | None = None, max_messages: int | None = None, progress: bool = False) -> Rows:
    """Rows from one or more single-symbol recordings, concatenated in the order given
    (time keeps increasing within each file; splits treat each file's rows as a block)."""
    from engine.features.dataset import message_table
    from engine.features.vector import batch_features
    spec = spec or LabelSpec()
    parts, source, n0 = [], [], 0
    it = paths
    if progress:
        from tqdm import tqdm
        it = tqdm(paths, desc="features", unit="file")
    for p in it:
        tab = message_table(p, max_messages=max_messages)
        ins = tab["instrument"]
        vals, rdy, times = batch_features(tab["recs"], tab["starts"], tab["ends"], tab["tops"],
                                          float(ins.tick_size), float(ins.lot_size))
        part = rows_from_features(vals, rdy, times, spec)
        if len(part[1]) == 0:
            raise ValueError(f"{p}: no labelled row: every feature must be ready (300 s of data) and the "
                             f"horizon ({spec.horizon_s} s) must fit before the end; the recording has "
                             f"{(times.max() - times.min()) / 1e9 if len(times) else 0:.0f} s")
        parts.append(part)
        source.append({"path": str(p), "symbol": ins.symbol, "first": n0, "rows": len(part[1]),
                       "t_first_ns": int(part[2][0]), "t_last_ns": int(part[2][-1])})
        n0 += len(part[1])
    X, y, t, le, r = (np.concatenate([p[i] for p in parts]) for i in range(5))
    return Rows(X, y, t, le, r, source)
