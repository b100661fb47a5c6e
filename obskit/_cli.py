"""The ``obskit`` command: ``demo``, ``doctor``, ``config``, ``version``; bare ``obskit`` prints the help."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="obskit", description="Correlated traces, logs and metrics.")
    parser.add_argument("--version", action="version", version=f"obskit {__version__}")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="run the payment/circuit-breaker scenario and print correlated logs")
    demo.add_argument("--format", choices=("json", "console", "auto"), default=None,
                      help="log format (default: OBSKIT_LOG_FORMAT, else console on a TTY, JSON otherwise)")
    demo.add_argument("--orders", type=int, default=12, help="how many orders to process (default 12)")
    doctor = sub.add_parser("doctor", help="say why telemetry does not arrive: one line per check, "
                                           "non-zero exit on any FAIL")
    doctor.add_argument("--timeout", type=float, default=3.0,
                        help="seconds each network check may take (default 3)")
    config = sub.add_parser("config", help="print the settings obskit resolves from this environment, "
                                           "with where each came from")
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_parser("version", help="print the obskit version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        from ._demo import run

        return run(log_format=args.format, orders=max(3, args.orders))
    if args.command == "doctor":
        from ._doctor import run as run_doctor

        return run_doctor(os.environ, timeout=max(0.1, args.timeout))
    if args.command == "config":
        return _config(as_json=args.json)
    from . import __version__

    print(__version__)
    return 0


def _config(*, as_json: bool) -> int:
    """The resolved settings (masked like every exit), where each came from, and every warning."""
    from ._config import resolve
    from ._config_table import rows, table
    from ._setup import integration_names

    config = resolve({}, integration_names=integration_names())
    found = rows(config, os.environ)
    if as_json:
        print(json.dumps({"options": [r.as_dict() for r in found], "warnings": list(config.warnings)},
                         indent=2))
    else:
        print(table(found))
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
