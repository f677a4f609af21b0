"""OHLCV candles from the files in ../shared/data: freqtrade feather files
(``date, open, high, low, close, volume``) and CSV with a ``timestamp`` or ``date`` column.
Returned as a numpy structured array: ``ts`` (ns since epoch, candle open), ``open``,
``high``, ``low``, ``close``, ``volume`` (float64; candles feed features and risk
estimates, never order prices)."""
from __future__ import annotations

import numpy as np

CANDLE_DTYPE = np.dtype([("ts", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                         ("close", "<f8"), ("volume", "<f8")])


def load_candles(path: str) -> np.ndarray:
    if path.endswith(".feather"):
        import pyarrow.feather as feather
        t = feather.read_table(path)
        cols = {c: t.column(c).to_numpy() for c in t.column_names}
        ts = cols["date"].astype("datetime64[ns]").astype(np.int64)
    else:
        import csv
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        key = "timestamp" if rows and "timestamp" in rows[0] else "date"
        ts = np.array([np.datetime64(r[key].replace(" ", "T").rstrip("Z").split("+")[0], "ns")
                       for r in rows]).astype(np.int64)
        cols = {c: np.array([float(r[c]) for r in rows]) for c in ("open", "high", "low", "close", "volume")}
    out = np.zeros(len(ts), CANDLE_DTYPE)
    out["ts"] = ts
    for c in ("open", "high", "low", "close", "volume"):
        out[c] = cols[c]
    if len(out) > 1 and not np.all(np.diff(out["ts"]) > 0):
        raise ValueError(f"{path}: candle times are not strictly increasing")
    if np.any(out["close"] <= 0):
        raise ValueError(f"{path}: non-positive close price")
    return out


def log_returns(candles: np.ndarray) -> np.ndarray:
    return np.diff(np.log(candles["close"]))
