"""The compiled decision path (cext.hotpath.DecisionPath) against the Python one it replaces
in the fused engine (Brain.on_state, then RiskGate.check and OrderGateway.start per intent):
the same orders, refusals and regimes on the real BTCUSDT capture; the same model scores;
every request the gate passes written before the call returns, the ones it cannot write
left to the gateway's slow path; a rehearsal that changes nothing."""
import asyncio
import time

import msgspec
import numpy as np
import pytest

from cext.hotpath import ACCEPTED, REFUSED, WRITTEN, DecisionPath
from engine import latency, schema
from engine.execution.gateway import BinanceRest, OrderGateway
from engine.feed.capture import load_capture
from engine.journal.journal import RK_EXEC, RK_ORDER, RK_REJECT, JournalReader
from engine.risk.limits import RiskLimits
from engine.testing.orderlinks import MemoryLinks
from engine.venues.instruments import Instrument
from processes.fused import FusedEngine, RunConfig

BTC = Instrument(symbol="BTCUSDT", inst=0, price_decimals=2, qty_decimals=3, tick_units=10, lot_units=1,
                 min_notional="100")
STAMPS = ("mono_origin", "t_parse", "t_book", "t_features", "t_infer", "t_strategy", "t_risk", "t_send")


def _limits():
    lim = RiskLimits()
    for kv in latency.BENCH_LIMITS:
        k, v = kv.split("=")
        lim = msgspec.structs.replace(lim, **{k: type(getattr(lim, k))(v)})
    # the capture replayed as fast as the engine takes it: its order rate is far above any venue's
    return msgspec.structs.replace(lim, order_rate=1e9, order_burst=1e9)


def _engine(journal, hot_path, model=None, backend="auto"):
    cfg = RunConfig(journal_dir=str(journal), admin=None, model_dir=model, limits=_limits(), max_future_ms=0,
                    quote_lots=3, status_every_s=0, hot_path=hot_path, model_backend=backend)
    rest = BinanceRest("http://127.0.0.1:1", "test-key", "test-secret")
    rest.links = MemoryLinks()
    return FusedEngine(cfg, [BTC], rest, OrderGateway(rest, [BTC]), "ws://127.0.0.1:1", "http://127.0.0.1:1/fapi/v1")


async def _replay(eng, frames, per_read=1):
    """The capture's frames through the engine's WebSocket session callbacks, as its
    listener calls them: ``per_read`` frames at a time, then the read's end, then a loop turn
    (the answers). Compiled: FeedPath.frame / read_end; Python: LiveFeed._on_frame /
    FusedEngine._brain_pass."""
    clock = time.monotonic_ns
    session = eng.feed.session
    k = 0
    for f in frames:
        if f.startswith(b'{"stream"'):
            session.on_frame(f, clock(), 0)
            k += 1
            if k % per_read:
                continue
            session.on_read_end()
        else:                                        # the REST depth snapshot, as LiveFeed applies it
            eng.feed.handler.on_frame(f, clock(), BTC.symbol)
        await asyncio.sleep(0)
    session.on_read_end()
    for _ in range(5):
        await asyncio.sleep(0)                       # the last answers and their journaling


def _journal(path):
    out = {RK_ORDER: [], RK_REJECT: [], RK_EXEC: []}
    for e in JournalReader(str(path)).entries():
        if e.kind in out:
            out[e.kind].append(e.record())
    return out


def _no_stamps(rec):
    return tuple(rec[k] for k in rec.dtype.names if k not in STAMPS and k not in ("mono_send", "mono_recv"))


@pytest.mark.parametrize("per_read", [1, 3])
def test_the_compiled_path_sends_what_the_python_path_sends_on_the_capture(tmp_path, btc_capture, per_read):
    """Frames read one at a time (every message decided) and three at a time (the read's
    latest state decided, the rest conflated)."""
    frames = [f for _, f in load_capture(btc_capture)]
    runs = {}
    for hot in ("compiled", "python"):
        async def main():
            eng = _engine(tmp_path / hot, hot)
            assert (eng.feed_path is not None) == (eng.path is not None) == (hot == "compiled")
            await _replay(eng, frames, per_read)
            eng.journal.close()
            reg = eng.brain.regimes[BTC.inst]
            mm = eng.brain.strategies[BTC.inst]
            return {"journal": _journal(tmp_path / hot), "requests": list(eng.rest.links.requests),
                    "regime": (reg.t, reg.minute, reg.regime, reg.closes.tolist()),
                    "strategy": (mm.next_id, mm.quotes_sent, mm.cancels_sent, mm.quotes),
                    "gate": eng.gate.stats(), "open": sorted(eng.book.orders),
                    "risk": eng.state.open_orders(BTC.inst), "counts": dict(eng.counts),
                    "messages": (eng.feed.messages, eng.metrics.messages_pending, len(eng.feed.latency_ns)),
                    "features": eng.feed.features[BTC.inst].out.tobytes()}
        runs[hot] = asyncio.run(main())
    a, b = runs["compiled"], runs["python"]
    orders = a["journal"][RK_ORDER]
    assert len(orders) > 100, "the capture should make the market maker quote and requote"
    for kind in (RK_ORDER, RK_REJECT, RK_EXEC):
        assert [_no_stamps(r) for r in a["journal"][kind]] == [_no_stamps(r) for r in b["journal"][kind]], kind
    # the same requests on the wire, but for the signature's timestamp (and so the signature)
    strip = [r.split(b"&timestamp=")[0] for r in a["requests"]]
    assert strip == [r.split(b"&timestamp=")[0] for r in b["requests"]]
    assert a["regime"] == b["regime"] and len(a["regime"][3]) >= 5          # minutes closed alike
    for k in ("strategy", "gate", "open", "risk", "counts", "messages", "features"):
        assert a[k] == b[k], k
    assert (a["counts"]["conflated"] > 1000) == (per_read > 1)
    # refusals happened, and by the layer that needs the orders in flight of the same decision
    # (a requote's new bid against the ask it has not cancelled yet): PositionBook.order_in_flight
    from cext.risk import RiskGate
    reasons = {RiskGate.reason_name(int(r["reason"])) for r in a["journal"][RK_REJECT]}
    assert a["counts"]["rejects"] > 10 and "self_trade" in reasons, reasons
    # every order went out at once, stamped in path order
    assert all(o["t_send"] > 0 for o in orders)
    for o in orders:
        t = [int(o[k]) for k in STAMPS if k != "t_parse"]
        assert t == sorted(t), o


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
def test_the_compiled_path_scores_as_the_runtime_does(tmp_path, trained_registry, backend):
    """Each scored decision's probabilities are the ones EnsembleRuntime.predict gives on
    the same features with the same commits (one loaded from the same registry, stepped
    alongside); sample_ns=0 commits every decision, as a 100 ms sampling does when
    messages are that far apart. The compiled program is run in place; an ONNX Runtime
    session through EnsembleRuntime.predict."""
    async def main():
        eng = _engine(tmp_path / "j", "compiled", model=trained_registry["root"], backend=backend)
        from engine.models.registry import ModelRegistry
        ref = ModelRegistry(trained_registry["root"]).load(backend=backend)
        p = DecisionPath(eng.brain, eng.gate, eng.state, eng.book, eng.gateway, eng.feed.features, sample_ns=0)
        rt = eng.brain.models[BTC.inst]
        assert rt.backend == ref.backend == backend
        fe = eng.feed.features[BTC.inst]
        rng = np.random.default_rng(4)
        fe.ready[:] = True
        calls = rt.calls
        for k in range(40):
            fe.out[:] = rng.standard_normal(len(fe.out))
            p.decide(BTC.inst, 1, 1_700_000_000_000_000_000 + k * 10**8, 0, 600_000, 600_002, 0, 1)
            assert p.scored
            want = ref.predict(fe.out, True)
            assert np.array_equal(rt.probs, want), k
        assert rt.calls == calls + 40
        fe.ready[3] = False                          # not every feature ready: not scored, signal 0
        p.decide(BTC.inst, 1, 1_700_000_000_000_000_000, 0, 600_000, 600_002, 0, 1)
        assert not p.scored and rt.calls == calls + 40
        fe.ready[:] = True
        fe.out[5] = np.nan                           # ready but not finite: refused as predict refuses
        with pytest.raises(ValueError, match="not all finite"):
            p.decide(BTC.inst, 1, 1_700_000_000_000_000_000, 0, 600_000, 600_002, 0, 1)
        eng.journal.close()

    asyncio.run(main())


def _ready_path(tmp_path):
    """An engine whose market maker quotes on the next decision: its features ready and a
    valid book."""
    eng = _engine(tmp_path / "j", "compiled")
    fe = eng.feed.features[BTC.inst]
    fe.out[:] = 0.001
    fe.ready[:] = True
    return eng, eng.path


def _decide(p, bb=600_000, ba=600_004, ts=1_700_000_000_000_000_000):
    return p.decide(BTC.inst, time.monotonic_ns(), ts, 0, bb, ba, 0, time.monotonic_ns())


def test_requests_are_written_before_the_call_returns(tmp_path):
    async def main():
        eng, p = _ready_path(tmp_path)
        links = eng.rest.links
        out = _decide(p)
        assert [o for o, *_ in out] == [WRITTEN, WRITTEN]               # a bid and an ask
        assert links.n == 2 and all(r.startswith(b"POST /fapi/v1/order?symbol=BTCUSDT&side=") for r in links.requests)
        for outcome, order, link, fut in out:
            assert int(order["t_send"][0]) >= int(order["t_risk"][0]) > 0
            assert link.pending is fut and not fut.done()
        assert sorted(eng.book.orders) == sorted(int(o["client_id"][0]) for _, o, _, _ in out)
        assert eng.state.open_orders(BTC.inst) == (3, 3)                # lots in flight, buy and sell
        eng.journal.close()

    asyncio.run(main())


def test_what_cannot_be_written_at_once_is_left_to_the_slow_path(tmp_path):
    async def main():
        eng, p = _ready_path(tmp_path)
        links = eng.rest.links
        for link in links.links:                     # every connection busy
            link.pending = asyncio.get_running_loop().create_future()
        out = _decide(p)
        assert [o for o, *_ in out] == [ACCEPTED, ACCEPTED] and links.n == 0
        assert links.stats["all_busy"] == 2
        assert sorted(eng.book.orders) == sorted(int(o["client_id"][0]) for _, o, _, _ in out)
        for link in links.links:
            link.pending = None
        eng.gateway.breaker.open_until = time.monotonic() + 60           # the breaker open: not written...
        out = _decide(p, bb=600_100, ba=600_104)
        assert ACCEPTED in [o for o, *_ in out] and WRITTEN not in [o for o, *_ in out] and links.n == 0
        new = next(o for k, o, _, _ in out if k == ACCEPTED and int(o["action"][0]) == schema.ACT_NEW)
        execs = await eng.gateway.start(new, write=False)               # ...and refused by the gateway
        assert int(execs["kind"][0]) == schema.EX_REJECT and int(execs["reason"][0]) == -1
        eng.journal.close()

    asyncio.run(main())


def test_refusals_come_back_with_their_intents(tmp_path):
    async def main():
        eng, p = _ready_path(tmp_path)
        eng.state.trading_state = schema.TS_HALTED
        out = _decide(p)
        assert [o for o, *_ in out] == [REFUSED, REFUSED] and eng.rest.links.n == 0
        for _, rej, intent, _ in out:
            assert int(rej["client_id"][0]) == int(intent["client_id"][0])
            assert int(intent["t_strategy"][0]) > 0
        assert eng.book.orders == {}
        eng.journal.close()

    asyncio.run(main())


def test_a_rehearsal_changes_nothing_and_writes_nothing(tmp_path):
    async def main():
        eng, p = _ready_path(tmp_path)
        _decide(p)
        await asyncio.sleep(0)
        mm = eng.brain.strategies[BTC.inst]

        def state():
            return (mm.next_id, mm.quotes, mm.quotes_sent, mm.cancels_sent, eng.gate.stats(),
                    eng.state.open_orders(BTC.inst), eng.state.tokens, sorted(eng.book.orders),
                    eng.rest.links.n, p.decisions, p.written)
        before = state()
        built = [p.rehearse() for _ in range(50)]
        assert built == [1] * 50 and p.rehearsals == 50
        assert state() == before
        eng.journal.close()

    asyncio.run(main())


def test_a_reloaded_model_is_the_one_the_path_scores_with(tmp_path, registry_copy):
    async def main():
        eng = _engine(tmp_path / "j", "compiled", model=registry_copy)
        fe = eng.feed.features[BTC.inst]
        fe.out[:] = 0.001
        fe.ready[:] = True
        old = eng.brain.models[BTC.inst]
        _decide(eng.path)
        assert old.calls == 1
        eng.admin_handlers()["reload-model"](None)      # the admin's reload: the path is told at once
        new = eng.brain.models[BTC.inst]
        assert new is not old
        _decide(eng.path)
        assert (old.calls, new.calls) == (1, 1)
        eng.journal.close()

    asyncio.run(main())
