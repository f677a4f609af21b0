"""`cryptoscalp run --venue binance` (paper): the venue's public streams drive the built-in
sim's book and our orders are matched there. Offline, a stand-in for Binance serves the
real BTCUSDT capture (its frames byte for byte over a combined-stream WebSocket, its REST
depth snapshot and an exchangeInfo with the capture's instrument rules); the run must
connect to it, quote, have orders acknowledged and filled against the recorded market,
and stop with nothing open."""
import json
import subprocess

import orjson

from test_kill9 import CLI, entries, fills

from engine import schema
from engine.feed.capture import iter_capture
from engine.feed.replay import infer_instruments
from engine.journal.journal import RK_EVENT, RK_EXEC, RK_ORDER
from engine.testing.servers import SnapshotHTTP, ThreadedReplayWS
from engine.venues.sim.server import exchange_info


def test_paper_on_binance_public_data(btc_capture, tmp_path):
    frames, snap = [], None
    for _, f in iter_capture(btc_capture):
        if f.startswith(b'{"stream"'):
            frames.append((orjson.loads(f)["stream"], f))
        else:
            snap = f
    ins = infer_instruments(btc_capture, "BTCUSDT")[0]
    ws = ThreadedReplayWS(frames, rate_hz=5000)           # ~19 s for the capture's 345 s: ~18x
    rest = SnapshotHTTP({"BTCUSDT": snap}, exchange_info=json.dumps(exchange_info([ins])).encode())
    j = str(tmp_path / "journal")
    proc = subprocess.Popen([CLI, "run", "--venue", "binance", "--binance-ws", ws.url,
                             "--binance-rest", rest.url[:-len("/fapi/v1")], "--seconds", "26", "--journal", j,
                             "--admin", "none", "--metrics-port", "-1", "--log-format", "text",
                             "--feed-max-future-ms", "0"],       # the replay runs ahead of real time
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ws.wait_clients(1)                                 # the sim's upstream connection (the engine talks to the sim)
        ws.play(timeout=120)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        ws.close()
        rest.close()
    assert proc.returncode == 0, out[-4000:]
    assert "paper trading on Binance USD-M public data" in out
    final = json.loads(out.strip().splitlines()[-1])
    assert rest.requests >= 2                              # exchangeInfo, then the depth snapshot
    es = entries(j)
    orders = [e.record() for e in es if e.kind == RK_ORDER]
    acks = [e.record() for e in es if e.kind == RK_EXEC and int(e.record()["kind"]) == schema.EX_ACK]
    assert final["orders_sent"] == len(orders) > 10 and len(acks) > 5
    # quotes at prices of the recorded market (BTC near 61,800 USDT on 2024-08-08), on its tick grid
    px = [int(o["px"]) for o in orders if int(o["action"]) == schema.ACT_NEW]
    assert px and all(60_000 * 10 ** ins.price_decimals // ins.tick_units < p < 64_000 * 10 ** ins.price_decimals
                      // ins.tick_units for p in px)
    assert fills(es), "no order filled against the recorded market"
    assert final["fills"] == len(fills(es))
    stop = [e.record() for e in es if e.kind == RK_EVENT and e.record()["event"] == "stop"][-1]
    assert stop["venue_open_orders_after"] == 0 and final["venue_open_orders_after_stop"] == 0
