"""A stand-in for vLLM or the worker under entrypoint.sh: records its start, signals and exit in a shared file.

python -m tests.fakes.standin NAME --record FILE [--exit-code N] [--exit-after S] [--ignore-sigterm] [--spawn-child]
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--record", required=True)
    parser.add_argument("--exit-code", type=int, default=0, help="exit code on SIGTERM or after --exit-after")
    parser.add_argument("--exit-after", type=float, default=None)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--spawn-child", action="store_true")
    args = parser.parse_args(argv)

    def record(event: str) -> None:
        with open(args.record, "a") as log:
            log.write(f"{time.monotonic():.3f} {args.name} {event}\n")

    def on_term(signum: int, frame: FrameType | None) -> None:
        record("TERM")
        if not args.ignore_sigterm:
            record(f"exit {args.exit_code}")
            sys.exit(args.exit_code)

    signal.signal(signal.SIGTERM, on_term)
    record(f"start {os.getpid()}")
    if args.spawn_child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        record(f"child {child.pid}")
    deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.05)
    record(f"exit {args.exit_code}")
    sys.exit(args.exit_code)


if __name__ == "__main__":
    main(sys.argv[1:])
