"""Market records to another host over ZeroMQ PUB/SUB with CURVE, on loopback: the real
capture's messages arrive byte for byte and in order; a subscriber with an unknown key
receives nothing."""
import time

import numpy as np
import pytest

from engine.features.dataset import message_table
from engine.ipc.admin import generate_keys
from engine.ipc.fanout import MarketPublisher, MarketSubscriber


def test_capture_records_fan_out_to_an_authorised_subscriber_only(btc_capture):
    T = message_table(btc_capture, "BTCUSDT", max_messages=5000)
    spub, ssec = generate_keys()
    cpub, csec = generate_keys()
    opub, osec = generate_keys()
    pub = MarketPublisher("tcp://127.0.0.1:*", spub, ssec, [cpub])
    good = MarketSubscriber(pub.endpoint, cpub, csec, spub, ["BTCUSDT"])
    bad = MarketSubscriber(pub.endpoint, opub, osec, spub, ["BTCUSDT"])
    try:
        # the slow-joiner handshake: publish a probe until the good subscriber hears one
        deadline = time.time() + 10
        while time.time() < deadline:
            pub.publish("BTCUSDT", T["recs"][0:1], T["tops"][0:1])
            if good.recv(100) is not None:
                break
        else:
            pytest.fail("the authorised subscriber never connected")
        while good.recv(50) is not None:
            pass
        first = pub.seq + 1
        n = len(T["starts"])
        got = []
        for i in range(n):
            a, b = T["starts"][i], T["ends"][i]
            pub.publish("BTCUSDT", T["recs"][a:b], T["tops"][i:i + 1])
            if i % 200 == 199:                 # drain as we go (a real brain reads continuously)
                while (m := good.recv(0)) is not None:
                    got.append(m)
        while (m := good.recv(500)) is not None:
            got.append(m)
        assert [m[1] for m in got] == list(range(first, first + n))
        for i, (sym, seq, recs, top) in enumerate(got):
            a, b = T["starts"][i], T["ends"][i]
            assert sym == "BTCUSDT" and recs.tobytes() == T["recs"][a:b].tobytes()
            assert top.tobytes() == T["tops"][i:i + 1].tobytes()
        assert good.missed == 0
        assert bad.recv(200) is None and bad.received == 0        # CURVE refused it
    finally:
        good.close()
        bad.close()
        pub.close()


def test_fanout_refuses_plain_or_local_transport():
    spub, ssec = generate_keys()
    with pytest.raises(ValueError, match="tcp://"):
        MarketPublisher("ipc:///tmp/x", spub, ssec, [spub])
    with pytest.raises(ValueError, match="CURVE"):
        MarketPublisher("tcp://127.0.0.1:*", spub, ssec, [])


def test_the_running_engine_publishes_what_its_feed_handles(tmp_path):
    """`cryptoscalp run --publish`: a subscriber on another 'host' (loopback) receives the
    feed's records with consecutive sequence numbers."""
    import json
    import os
    import shutil
    import socket
    import subprocess
    import sys
    spub, ssec = generate_keys()
    cpub, csec = generate_keys()
    keys = tmp_path / "pub.json"
    keys.write_text(json.dumps({"server_public": spub.decode(), "server_secret": ssec.decode(),
                                "authorized": [cpub.decode()]}))
    os.chmod(keys, 0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = shutil.which("cryptoscalp") or os.path.join(os.path.dirname(sys.executable), "cryptoscalp")
    p = subprocess.Popen([cli, "run", "--seconds", "8", "--speed", "5", "--journal", str(tmp_path / "j"),
                          "--admin", "none", "--metrics-port", "-1", "--publish", f"tcp://127.0.0.1:{port}",
                          "--publish-keys", str(keys)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sub = MarketSubscriber(f"tcp://127.0.0.1:{port}", cpub, csec, spub, ["BTCUSDT"])
    got = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline and p.poll() is None:
            m = sub.recv(200)
            if m is not None:
                got.append(m)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
    finally:
        sub.close()
        if p.poll() is None:
            p.kill()
    assert len(got) > 50
    seqs = [m[1] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and sub.missed == 0
    assert all(m[0] == "BTCUSDT" and len(m[2]) >= 1 for m in got)
