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
    demo.add_argument("--serve", action="store_true",
                      help="run as a long-lived HTTP service with its own customers (a payment outage every "
                           "minute) and /metrics, until Ctrl-C or --duration")
    demo.add_argument("--host", default="127.0.0.1", help="with --serve: the service's address (default "
                                                          "127.0.0.1; 0.0.0.0 in a container)")
    demo.add_argument("--port", type=int, default=8000,
                      help="with --serve: the service's HTTP port (default 8000; 0 picks a free one)")
    demo.add_argument("--metrics-port", type=int, default=None,
                      help="with --serve: the /metrics port (default OBSKIT_METRICS_PORT, else 9464)")
    demo.add_argument("--duration", type=float, default=None,
                      help="with --serve: stop after this many seconds (default: run until Ctrl-C)")
    demo.add_argument("--outage-every", type=float, default=60.0,
                      help="with --serve: seconds between payment-provider outages (default 60)")
    doctor = sub.add_parser("doctor", help="say why telemetry does not arrive: one line per check, "
                                           "non-zero exit on any FAIL")
    doctor.add_argument("--timeout", type=float, default=3.0,
                        help="seconds each network check may take (default 3)")
    config = sub.add_parser("config", help="print the settings obskit resolves from this environment, "
                                           "with where each came from")
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_parser("run", help="run a command with obskit set up from the environment, no code change: "
                               "obskit run -- gunicorn -w 2 app:app", add_help=False)
    sub.add_parser("version", help="print the obskit version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["run"]:  # everything after it is the command's, options included: not argparse's
        from ._run import run

        return run(args_in[1:])
    parser = _parser()
    args = parser.parse_args(argv)

    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        if args.serve:
            from ._demo._serve import serve

            return serve(host=args.host, port=args.port, metrics_port=args.metrics_port,
                         duration=args.duration, outage_every=args.outage_every, log_format=args.format)
        from ._demo import run as run_demo

        return run_demo(log_format=args.format, orders=max(3, args.orders))
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
