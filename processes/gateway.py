"""The gateway process (4proc): gated orders from the order ring -> signed REST on the
order sessions (engine.execution.gateway.OrderGateway: client order ids that make retries
idempotent, rate-limit weights, the circuit breaker) -> each order's results back on the
gateway ring after an EX_SENT record (its ``t_send``); the venue's user data stream ->
execution reports on the same ring; the cancel-on-disconnect countdown renewed every
second; a heartbeat in the group's ``procs`` region (STARTING until the user stream is
connected and reconciled).

Started by the engine (the risk process) that owns the group (``cryptoscalp run
--topology 4proc``), never by hand: it dies with its parent. API keys come in the
environment (CRYPTOSCALP_API_KEY, CRYPTOSCALP_API_SECRET), never on the command line.
When it dies the engine HALTS, settles the orders it had in flight with the venue,
cancels through its own session what must be cancelled meanwhile, and trades again once
the new gateway is up and everything is reconciled.

    python -m processes.gateway --run NAME --instruments JSON --base URL --ws URL [--wait hybrid] [--cpus 3]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import msgspec

from processes import child_args

log = logging.getLogger("cryptoscalp.gateway")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="processes.gateway")
    ap.add_argument("--run", required=True, help="segment name prefix of the group (/cs.<run>.*)")
    ap.add_argument("--instruments", required=True, help="JSON list of engine.venues.instruments.Instrument")
    ap.add_argument("--base", required=True, help="the venue's REST base URL (e.g. https://fapi.binance.com)")
    ap.add_argument("--ws", required=True, help="the venue's WebSocket base URL (user data stream)")
    ap.add_argument("--wait", choices=["spin", "hybrid", "block"], default="hybrid",
                    help="how the order ring is read (spin: a core at 100 %%; hybrid, block: futex wake-ups)")
    args = child_args(ap, argv)
    key, secret = os.environ.get("CRYPTOSCALP_API_KEY"), os.environ.get("CRYPTOSCALP_API_SECRET")
    if not key or not secret:
        log.critical("no API keys: CRYPTOSCALP_API_KEY and CRYPTOSCALP_API_SECRET must be set")
        return 2
    import uvloop
    return uvloop.run(_run(args, key, secret))


async def _run(args, key: str, secret: str) -> int:
    import time

    import numpy as np

    from engine import schema
    from engine.execution.gateway import BinanceRest, OrderGateway, pcts_us
    from engine.feed.ringfeed import segments
    from engine.ipc.heartbeat import Heartbeats
    from engine.ipc.orderflow import GatewaySide, sent_record, state_record
    from engine.ipc.waits import loop_waker, poll_loop
    from engine.venues.instruments import Instrument

    instruments = msgspec.json.decode(args.instruments.encode(), type=list[Instrument])
    rest = BinanceRest(args.base, key, secret)
    gw = OrderGateway(rest, instruments)
    side = GatewaySide(args.run)
    hb = Heartbeats.attach(segments(args.run)[2])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    st = {"state": schema.PS_STARTING, "user_reconnects": 0}
    tasks: set[asyncio.Task] = set()

    def beat() -> None:
        hb.beat("gateway", events=gw.stats["sent"] + gw.stats["fast_sent"], errors=gw.stats["rejects"],
                state=st["state"])

    async def finish(order, pending) -> None:
        try:
            execs = await pending
        except Exception as e:                    # OrderGateway never raises; if it did, say so as a REJECT
            log.error("order %d: %r", int(order["client_id"][0]), e)
            execs = gw._exec(order[0], schema.EX_REJECT, -1)
        execs = np.asarray(execs, schema.EXEC_DTYPE).reshape(-1)
        side.publish(np.concatenate([sent_record(order, len(execs)), execs]))

    hop_ns: list[int] = []                        # t_risk (engine) -> read here: the order ring hop

    def on_order(order) -> None:
        if len(hop_ns) < 100_000 and int(order["t_risk"][0]):
            hop_ns.append(time.monotonic_ns() - int(order["t_risk"][0]))
        pending = gw.start(order)                 # written now (t_send stamped), answered later
        t = asyncio.ensure_future(finish(order, pending))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    def down(err) -> None:                        # the engine HALTS until READY
        st["state"] = schema.PS_STARTING
        side.publish(state_record(schema.GW_RECONCILING))
        if err is not None:
            st["user_reconnects"] += 1

    async def reconciled(rec) -> None:
        """The gone orders reported CANCELED, then READY: the engine fetches the fills it
        missed and the positions, and trades again."""
        side.publish(rec["gone"])
        st["state"] = schema.PS_READY
        side.publish(state_record(schema.GW_READY))
        beat()

    async def housekeeping() -> None:
        while not stop.is_set():
            beat()
            try:
                await gw.heartbeat()              # cancel-on-disconnect countdown
            except Exception as e:
                log.warning("countdownCancelAll: %s", e)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    await rest.sync_time()
    await rest.open()
    log.info("gateway up: %s", "took the gateway ring over" if side.took_over else "new gateway ring",
             extra={"pid": os.getpid(), "venue": args.base, "wait": args.wait})
    beat()
    us = asyncio.ensure_future(gw.follow_user_stream(args.ws, stop.is_set, down, reconciled, side.publish))
    hk = asyncio.ensure_future(housekeeping())
    waker = loop_waker(args.run, "order", args.wait)
    t0 = time.monotonic()
    try:
        await poll_loop([lambda: side.poll_orders(on_order)], args.wait, 200_000, lambda: not stop.is_set(),
                        waker=waker)
    finally:
        for t in list(tasks):                     # answers already on their way: delivered
            await asyncio.wait([t], timeout=5)
        st["state"] = schema.PS_STOPPED
        beat()
        for t in (us, hk):
            t.cancel()
        if waker is not None:
            waker.close()
        await rest.close()
        side.close()
        hb.close()
        # the latency harness reads the send stage's halves from this line (4proc: they happen here)
        log.info("gateway stopped after %.0f s", time.monotonic() - t0,
                 extra={"stats": gw.stats, "send_split_us": {"order_hop": pcts_us(hop_ns), **rest.send_split()},
                        **side.counts})
    return 0


if __name__ == "__main__":
    sys.exit(main())
