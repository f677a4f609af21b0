"""The installed CLI's market-data commands: book-replay, replay, record."""
import csv
import time
import gzip
import json
import os
import shutil
import subprocess
import sys

import orjson

from engine.feed.capture import iter_capture
from engine.testing.servers import SnapshotHTTP, ThreadedReplayWS

CLI = shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")


def run(*args, timeout=300):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_book_replay_on_the_real_capture(btc_capture, tmp_path):
    out = tmp_path / "tob.csv"
    r = run("book-replay", btc_capture, "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["symbol"] == "BTCUSDT" and "gap" not in res and "crossed" not in res
    rows = list(csv.reader(open(out)))
    assert len(rows) - 1 == res["rows"] > 6000
    assert all(len(x) == 5 for x in rows)


def test_book_replay_refuses_a_finer_price_than_the_scale(tmp_path):
    cap = tmp_path / "c.gz"
    lines = [
        b'1 {"stream":"x@depth","data":{"e":"depthUpdate","E":1,"T":1,"s":"XUSDT","U":1,"u":5,"pu":0,"b":[["10.10","1.0"]],"a":[["10.20","2.0"]]}}',
        b'2 {"lastUpdateId":5,"E":1,"T":1,"bids":[["10.10","1.0"]],"asks":[["10.20","2.0"]]}',
        b'3 {"stream":"x@depth","data":{"e":"depthUpdate","E":2,"T":2,"s":"XUSDT","U":6,"u":6,"pu":5,"b":[["10.105","1.0"]],"a":[]}}',
    ]
    cap.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    r = run("book-replay", str(cap), "--out", str(tmp_path / "o.csv"))
    assert r.returncode == 2
    assert "price_off_grid" in r.stderr and ":3:" in r.stderr and "price 2 decimals" in r.stderr


def test_replay_prints_feed_stats(btc_capture):
    r = run("replay", btc_capture)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["parser"]["rejected"] == 0 and st["books"]["BTCUSDT"]["state"] == "synced"
    assert st["frames"] == 93954


def test_record_then_replay_round_trip(btc_capture, tmp_path):
    frames, snap = [], None
    for k, (_, f) in enumerate(iter_capture(btc_capture)):
        if k >= 3000:
            break
        if f.startswith(b'{"stream"'):
            frames.append((orjson.loads(f)["stream"], f))
        else:
            snap = f
    ws = ThreadedReplayWS(frames, rate_hz=3000)
    rest = SnapshotHTTP({"BTCUSDT": snap})
    out = tmp_path / "rec.gz"
    proc = subprocess.Popen([CLI, "record", "--symbols", "BTCUSDT", "--out", str(out), "--seconds", "8",
                             "--ws-url", ws.url, "--rest-url", rest.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ws.wait_clients(1)
        ws.play()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        ws.close()
        rest.close()
    assert proc.returncode == 0, stderr
    res = json.loads(stdout.strip().splitlines()[-1])
    assert res["snapshots"] == 1 and res["frames"] == len(frames)
    recorded = [f for _, f in iter_capture(str(out))]
    assert len(recorded) == len(frames) + 1
    assert [f for f in recorded if f.startswith(b'{"stream"')] == [f for _, f in frames]
    # the recording replays into a synced book
    r = run("book-replay", str(out), "--out", str(tmp_path / "tob.csv"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] > 0


def test_book_replay_on_a_coinm_capture(tmp_path):
    """COIN-M: symbol BTCUSD_PERP, quantities in contracts (no decimals), `ps` field."""
    cap = tmp_path / "coinm.gz"
    lines = [
        b'1 {"stream":"btcusd_perp@depth@0ms","data":{"e":"depthUpdate","E":10,"T":10,"s":"BTCUSD_PERP","ps":"BTCUSD",'
        b'"U":100,"u":105,"pu":99,"b":[["61800.1","12"]],"a":[["61800.2","30"]]}}',
        b'2 {"lastUpdateId":105,"E":10,"T":10,"bids":[["61800.1","12"],["61799.9","4"]],"asks":[["61800.2","30"]]}',
        b'3 {"stream":"btcusd_perp@depth@0ms","data":{"e":"depthUpdate","E":11,"T":11,"s":"BTCUSD_PERP","ps":"BTCUSD",'
        b'"U":106,"u":107,"pu":105,"b":[["61800.1","0"]],"a":[["61800.2","25"]]}}',
        b'4 {"stream":"btcusd_perp@depth@0ms","data":{"e":"depthUpdate","E":12,"T":12,"s":"BTCUSD_PERP","ps":"BTCUSD",'
        b'"U":108,"u":110,"pu":107,"b":[["61800.0","7"]],"a":[]}}',
    ]
    cap.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    out = tmp_path / "tob.csv"
    r = run("book-replay", str(cap), "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert (res["symbol"], res["price_decimals"], res["qty_decimals"]) == ("BTCUSD_PERP", 1, 0)
    rows = list(csv.reader(open(out)))
    assert rows[1:] == [["105", "61800.1", "12", "61800.2", "30"],
                        ["107", "61799.9", "4", "61800.2", "25"],
                        ["110", "61800.0", "7", "61800.2", "25"]]


def test_sim_command_prints_urls_and_serves(tmp_path):
    import urllib.request
    proc = subprocess.Popen([CLI, "sim", "--synthetic", "--seed", "3", "--speed", "5"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(6)]
        assert "ready" in lines[0]
        rest = lines[1].split()[1]
        assert rest.startswith("http://127.0.0.1:") and lines[2].startswith("WebSocket ws://127.0.0.1:")
        assert lines[4].startswith("api key")
        with urllib.request.urlopen(rest + "/ping", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_sim_replays_a_capture(btc_capture):
    import urllib.request
    proc = subprocess.Popen([CLI, "sim", "--replay", btc_capture, "--speed", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        rest = lines[1].split()[1]
        assert "BTCUSDT" in proc.stdout.readline()
        deadline = time.time() + 60
        while time.time() < deadline:
            with urllib.request.urlopen(rest + "/depth?symbol=BTCUSDT&limit=5", timeout=5) as r:
                d = json.loads(r.read())
            if d["lastUpdateId"] >= 5123135475514:          # the capture's last depth update
                break
            time.sleep(0.2)
        assert d["lastUpdateId"] == 5123135475514
        # the sim's book at the end of the capture is the feed's book at the end of the capture
        from engine.feed.replay import iter_book
        *_, (status, recs, book, sync) = iter_book(btc_capture, "BTCUSDT")
        assert (float(d["bids"][0][0]), float(d["asks"][0][0])) == (book.best_bid[0] / 100, book.best_ask[0] / 100)
    finally:
        proc.terminate()
        proc.wait(10)


def test_backtest_command_writes_its_report(btc_capture, tmp_path):
    out = tmp_path / "bt"
    r = run("backtest", "--data", btc_capture, "--out", str(out), "--tick-size", "0.10", "--lot-size", "0.001")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["fills"] > 0 and s["messages"] > 90_000
    assert {p.name for p in out.iterdir()} == {"summary.json", "trades.csv", "equity.png", "report.html"}
    rows = list(csv.reader(open(out / "trades.csv")))
    assert rows[0] == ["time_ns", "symbol", "strategy", "side", "price", "qty", "fee", "liquidity", "position_lots"]
    assert all(float(r[4]) * 10 == round(float(r[4]) * 10) for r in rows[1:])     # on the 0.10 grid
    assert {r[1] for r in rows[1:]} == {"BTCUSDT"} and {r[2] for r in rows[1:]} == {"MarketMaker"}
    r = run("backtest", "--data", btc_capture, "--out", str(out), "--strategy", "nope")
    assert r.returncode == 2 and "not built" in r.stderr
    for strat in ("mr", "switch"):
        r = run("backtest", "--data", btc_capture, "--out", str(tmp_path / strat), "--strategy", strat,
                "--tick-size", "0.10")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["messages"] > 90_000


def test_backtest_two_instruments_with_the_model(btc_capture, eth_capture, trained_registry, tmp_path):
    out = tmp_path / "multi"
    r = run("backtest", "--data", btc_capture, eth_capture, "--tick-size", "0.10", "0.01", "--lot-size", "0.001",
            "--strategy", "switch", "--model", trained_registry["root"], "--correlation", "0.8", "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["instruments"] == ["BTCUSDT", "ETHUSDT"] and s["model"]["calls"] > 0
    assert "no_correlation" not in s["risk_rejects_by_reason"]
    for key in ("round_trips", "win_rate", "profit_factor", "mean_ci95"):
        assert key in s["trades"]
    assert s["sharpe_sampling_s"] == 1.0 and s["max_drawdown"] >= 0
    assert len(s["funding_events"]) == 2             # 00:00 UTC falls inside both captures
    html = (out / "report.html").read_text()
    assert "per strategy" in html and "per instrument" in html and "data:image/png;base64," in html
    r = run("backtest", "--data", btc_capture, eth_capture, "--tick-size", "0.1", "0.01", "0.001",
            "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "one per capture" in r.stderr
