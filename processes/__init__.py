"""One module per process; each only wires engine components to rings and regions."""
import argparse


def child_args(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The arguments every process the engine owns takes (--parent, --cpus), parsed, and
    the process set up with them: it dies with its parent (PR_SET_PDEATHSIG: SIGKILL, at
    once if the parent is already gone), runs on its CPU set, and logs JSON lines."""
    import os
    import signal

    ap.add_argument("--parent", type=int, default=0, help="the parent's pid (dies at once if it is gone)")
    ap.add_argument("--cpus", default="", help="CPU set, e.g. '2' or '2,3' (default: not pinned)")
    args = ap.parse_args(argv)
    from cext.shm_core import set_parent_death_signal
    set_parent_death_signal(signal.SIGKILL, args.parent)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    from engine.telemetry import json_logging
    json_logging()
    return args
