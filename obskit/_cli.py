"""The ``obskit`` command: ``obskit demo``, ``obskit config``, ``obskit version``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="obskit", description="Correlated traces, logs and metrics.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the payment/circuit-breaker scenario and print correlated logs")
    demo.add_argument("--format", choices=("json", "console", "auto"), default=None,
                      help="log format (default: OBSKIT_LOG_FORMAT, else console on a TTY, JSON otherwise)")
    demo.add_argument("--orders", type=int, default=12, help="how many orders to process (default 12)")
    sub.add_parser("config", help="print the settings obskit resolves from this environment")
    sub.add_parser("version", help="print the obskit version")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from ._demo import run

        return run(log_format=args.format, orders=max(3, args.orders))
    if args.command == "config":
        from ._config import resolve
        from ._setup import integration_names

        config = resolve({}, integration_names=integration_names())
        print(config)  # redacted like every exit: header values masked, no credentials in URLs
        for warning in config.warnings:
            print(warning, file=sys.stderr)
        return 0
    from . import __version__

    print(__version__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
