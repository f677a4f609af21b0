"""`cryptoscalp` command line."""
from __future__ import annotations

import argparse
import json
import sys

from engine import __version__

STAGE = """\
cryptoscalp {version}: what exists today is the foundation (record schema, shared-memory
rings and regions). Paper trading against the simulated exchange arrives with the market
data, sim exchange, risk and process-group issues; until then `run` performs the
transport self-check below: two real processes, one ring, one heartbeat region."""


def _cmd_run(args) -> int:
    from engine.ipc.selfcheck import run_selfcheck
    print(STAGE.format(version=__version__))
    run_selfcheck(run=args.run_name, n=args.records, wait=args.wait)
    return 0


def _cmd_shm(args) -> int:
    from engine.ipc import cleanup_stale, find_segments, pid_alive, segment_owner
    prefix = args.prefix
    if args.action == "ls":
        rows = []
        for name in find_segments(prefix):
            kind, pid = segment_owner(name)
            rows.append({"name": name, "kind": kind, "owner_pid": pid, "owner_alive": pid_alive(pid)})
        print(json.dumps(rows, indent=2))
    else:
        removed = cleanup_stale(prefix)
        print(json.dumps({"removed": removed}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cryptoscalp", description="Low-latency crypto perpetuals scalping engine")
    p.add_argument("--version", action="version", version=f"cryptoscalp {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the main job (today: the transport self-check)")
    r.add_argument("--run-name", default="selfcheck", help="segment name prefix /cs.<run>.")
    r.add_argument("--records", type=int, default=200_000, help="records to send (default 200000)")
    r.add_argument("--wait", choices=["spin", "yield", "block"], default="block",
                   help="reader wait strategy (default block: safe on small hosts)")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("shm", help="list or clean shared-memory segments")
    s.add_argument("action", choices=["ls", "clean"], help="ls: list; clean: unlink those whose owner is dead")
    s.add_argument("--prefix", default="/cs.", help="name prefix (default /cs.)")
    s.set_defaults(func=_cmd_shm)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
