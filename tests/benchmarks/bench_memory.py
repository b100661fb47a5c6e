"""Memory of a FastAPI app on uvicorn (1 worker) after a load period: obskit against the raw contrib setup.

The apps are bench_http's (bare, obskit, contrib and, when installed, the peers), started the same way; each
is loaded by ``wrk`` for ``seconds`` and its RSS read from ``/proc`` (every process of the server's session:
uvicorn with one worker is one process) when it is up and idle, and again after the load, with the peak
(``VmHWM``) beside it. Twice for obskit and contrib: with the loopback OTLP collector up, and with it down
(the endpoint a closed loopback port: every export refused, so whatever a stack keeps for retrying shows).
The variants alternate (order rotated each round); figures are medians over ``rounds``; beside each, spans
delivered/served (the collector up) or served (down).

Where the difference is: a second pair of runs (obskit, contrib; collector up, same load) with
``tracemalloc`` started before the app's first import (uvicorn's own imports come before it, alike on both
sides). After the load the app dumps a snapshot on SIGUSR1 with the modules it has loaded; what it holds is
summed by allocating file (the most recent frame outside importlib of the ``frames`` kept: with more than one,
a module's code counts for the package that imported it) per package (``opentelemetry.sdk``,
``obskit._logs``, ``structlog``, ``stdlib:logging``, ...). The table shows the packages where obskit holds
the most more (or less) than contrib. tracemalloc slows the app, so its runs are separate from the RSS ones.

Target (issue 12): obskit's RSS <= 1.1x the contrib setup's.
Run: ``python tests/benchmarks/bench_memory.py [seconds] [connections] [rounds] [frames] [--no-peers]``.
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_http import (  # the same apps, servers, receivers and peers as the throughput benchmark
    NAMES,
    PEERS,
    SENTRY_PROJECT,
    SentryReceiver,
    _free_port,
    _server_spans,
    _wrk,
    installed,
    peer_args,
    print_absent,
    serve,
    session_pids,
)
from otlp_receiver import OTLPReceiver

REPO = Path(__file__).resolve().parent.parent.parent

TRACEMALLOC = """
import json as _bench_json
import os as _bench_os
import signal as _bench_signal
import sys as _bench_sys
import tracemalloc as _bench_tracemalloc

_bench_tracemalloc.start(int(_bench_os.environ["BENCH_TRACEMALLOC_FRAMES"]))


def _bench_dump(*_):
    # The snapshot as it is (grouped by the benchmark, not in the loaded server), and the modules loaded.
    path = _bench_os.environ["BENCH_TRACEMALLOC"]
    _bench_tracemalloc.take_snapshot().dump(path + ".snapshot")
    files = [getattr(m, "__file__", None) or name for name, m in list(_bench_sys.modules.items())]
    with open(path + ".tmp", "w") as out:
        _bench_json.dump(files, out)
    _bench_os.replace(path + ".tmp", path)


_bench_signal.signal(_bench_signal.SIGUSR1, _bench_dump)
"""


def _memory_mb(sid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MiB, summed over every process of session ``sid``."""
    rss = hwm = 0
    for pid in session_pids(sid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss / 1024, hwm / 1024


def package_of(filename: str) -> str:
    """The package an allocation site belongs to, for summing: ``opentelemetry.sdk``, ``obskit._logs``,
    ``obskit.integrations``, ``stdlib:logging``, ``fastapi``, or the name as given (``<frozen ...>``)."""
    path = Path(filename)
    if "site-packages" in path.parts:
        parts = path.parts[path.parts.index("site-packages") + 1:]
    elif path.is_relative_to(REPO):
        parts = path.relative_to(REPO).parts
        if parts[:1] == ("integrations",):
            return "obskit.integrations"
    elif "lib" in path.parts and len(path.parts) > path.parts.index("lib") + 2:
        name = path.parts[path.parts.index("lib") + 2]
        return "stdlib:" + name.removesuffix(".py")
    else:
        return filename
    parts = tuple(p.removesuffix(".py") for p in parts)
    if parts[0] in ("opentelemetry", "obskit") and len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0]


def _traced(variant: str, endpoint: str, seconds: float, connections: int,
            frames: int) -> tuple[dict[str, float], dict[str, int]]:
    """(KiB held per package, modules loaded per package) by ``variant``'s app after the load."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        dump = Path(tmp) / "modules.json"
        with serve("fastapi", variant, endpoint, prelude=TRACEMALLOC,
                   extra_env={"BENCH_TRACEMALLOC": str(dump), "BENCH_TRACEMALLOC_FRAMES": str(frames)}
                   ) as (proc, port):
            _wrk(f"http://127.0.0.1:{port}/hello/world", seconds, connections)
            proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 120
            while not dump.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        if not dump.exists():
            raise RuntimeError(f"{variant}: no tracemalloc snapshot")
        held: dict[str, float] = defaultdict(float)
        for trace in tracemalloc.Snapshot.load(f"{dump}.snapshot").traces:
            # The most recent frame outside importlib: with ``frames`` > 1 a module's code objects count for
            # the code that imported it (mostly its own package); with 1 they stay importlib's.
            site = next((f.filename for f in reversed(trace.traceback)
                         if not f.filename.startswith("<frozen")), trace.traceback[-1].filename)
            held[package_of(site)] += trace.size / 1024
        modules: dict[str, int] = defaultdict(int)
        for file in json.loads(dump.read_text()):
            modules[package_of(file) if file.startswith("/") else "(built in)"] += 1
    return dict(held), dict(modules)


def _measure(variant: str, endpoint: str, sentry: SentryReceiver, seconds: float,
             connections: int) -> dict[str, float]:
    dsn = sentry.dsn(SENTRY_PROJECT["fastapi"])
    with serve("fastapi", variant, endpoint, sentry_dsn=dsn) as (proc, port):
        idle, _ = _memory_mb(proc.pid)
        served, _, _ = _wrk(f"http://127.0.0.1:{port}/hello/world", seconds, connections)
        rss, hwm = _memory_mb(proc.pid)
    return {"idle_mb": idle, "rss_mb": rss, "hwm_mb": hwm, "served": float(served + 1)}


def run(seconds: float = 60.0, connections: int = 8, rounds: int = 1, peers: bool = True, top: int = 12,
        frames: int = 1) -> dict[str, float]:
    """Per (variant, collector up/down): medians over ``rounds`` of idle RSS, RSS and peak after the load
    (MiB); served and delivered summed; obskit's RSS over contrib's (and over each installed peer's, the
    collector up); then the tracemalloc totals and, as ``held_kb:<variant>:<package>`` (and the modules it
    has loaded, ``modules:<variant>:<package>``), the ``top`` packages by obskit's difference from contrib,
    each block counted for its most recent frame outside importlib among ``frames`` (1: a module's code
    stays importlib's; 10 or so count it for the importing package, at many times tracemalloc's cost)."""
    cases = [("bare", "up"), ("obskit", "up"), ("contrib", "up"), ("obskit", "down"), ("contrib", "down")]
    cases += [(p, "up") for p in PEERS if peers and installed(p)]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in cases}
    out: dict[str, float] = {}
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: every export is refused
    with OTLPReceiver("http") as rx, SentryReceiver() as sentry:
        for r in range(rounds):
            k = r % len(cases)
            for variant, collector in cases[k:] + cases[:k]:
                before = (sentry.transactions(SENTRY_PROJECT["fastapi"]) if variant == "sentry"
                          else _server_spans(rx, f"bench-fastapi-{variant}"))
                figures = _measure(variant, rx.endpoint if collector == "up" else closed, sentry, seconds,
                                   connections)
                time.sleep(0.5)  # the last export request, sent as the server exited, is being decoded
                after = (sentry.transactions(SENTRY_PROJECT["fastapi"]) if variant == "sentry"
                         else _server_spans(rx, f"bench-fastapi-{variant}"))
                figures["delivered"] = float(after - before)
                runs[(variant, collector)].append(figures)
        for (variant, collector), measured in runs.items():
            key = f"{variant}_{collector}"
            for name in ("idle_mb", "rss_mb", "hwm_mb"):
                out[f"{key}_{name}"] = statistics.median(f[name] for f in measured)
            for name in ("served", "delivered"):
                out[f"{key}_{name}"] = sum(f[name] for f in measured)
        for collector in ("up", "down"):
            out[f"{collector}_ratio"] = out[f"obskit_{collector}_rss_mb"] / out[f"contrib_{collector}_rss_mb"]
        for peer in PEERS:
            if (peer, "up") in runs:
                out[f"up_vs_{peer}"] = out["obskit_up_rss_mb"] / out[f"{peer}_up_rss_mb"]
        traced = {v: _traced(v, rx.endpoint, seconds, connections, frames) for v in ("obskit", "contrib")}
    held = {v: t[0] for v, t in traced.items()}
    for variant, (packages, modules) in traced.items():
        out[f"{variant}_held_kb"] = sum(packages.values())
        out[f"{variant}_modules"] = float(sum(modules.values()))
    out["held_ratio"] = out["obskit_held_kb"] / out["contrib_held_kb"]
    differences = sorted(set(held["obskit"]) | set(held["contrib"]),
                         key=lambda p: -abs(held["obskit"].get(p, 0.0) - held["contrib"].get(p, 0.0)))
    for package in differences[:top]:
        for variant in ("obskit", "contrib"):
            out[f"held_kb:{variant}:{package}"] = held[variant].get(package, 0.0)
            out[f"modules:{variant}:{package}"] = float(traced[variant][1].get(package, 0))
    return out


def main(argv: list[str] | None = None) -> int:
    args, peers = peer_args(argv)
    seconds = float(args[0]) if args else 60.0
    connections = int(args[1]) if len(args) > 1 else 8
    rounds = int(args[2]) if len(args) > 2 else 1
    frames = int(args[3]) if len(args) > 3 else 1
    r = run(seconds, connections, rounds, peers, frames=frames)
    print(f"FastAPI on uvicorn, 1 worker; wrk -t1 -c{connections} -d{seconds:g}s; medians of {rounds} "
          "rounds; RSS of the server's processes in MiB")
    print(f"{'app':<16}{'collector':<11}{'idle':>8}{'after load':>12}{'peak':>8}{'x contrib':>11}"
          "   delivered/served")
    for variant in ("bare", "obskit", "contrib", *PEERS):
        for collector in ("up", "down"):
            key = f"{variant}_{collector}"
            if f"{key}_rss_mb" not in r:
                continue
            delivered, served = int(r[f"{key}_delivered"]), int(r[f"{key}_served"])
            shown = ("-" if variant == "bare" else f"{delivered}/{served} ({delivered / served:.0%})"
                     if collector == "up" else f"-/{served} (collector down)")
            print(f"{NAMES.get(variant, variant):<16}{collector:<11}{r[f'{key}_idle_mb']:>8.1f}"
                  f"{r[f'{key}_rss_mb']:>12.1f}{r[f'{key}_hwm_mb']:>8.1f}"
                  f"{r[f'{key}_rss_mb'] / r[f'contrib_{collector}_rss_mb']:>11.2f}   {shown}")
    print(f"obskit RSS / contrib's: collector up {r['up_ratio']:.2f}x, down {r['down_ratio']:.2f}x"
          + "".join(f"; / {NAMES[p]}'s {r[f'up_vs_{p}']:.2f}x" for p in PEERS if f"up_vs_{p}" in r))
    print_absent(peers)
    print(f"tracemalloc after the load (allocations since the app's first import): obskit "
          f"{r['obskit_held_kb']:.0f} KiB, contrib {r['contrib_held_kb']:.0f} KiB ({r['held_ratio']:.2f}x); "
          "by package, largest differences first:")
    print(f"  {'package':<42}{'obskit KiB':>11}{'contrib KiB':>12}{'difference':>11}{'modules':>12}")
    for key in r:
        if key.startswith("held_kb:obskit:"):
            package = key.split(":", 2)[2]
            mine, theirs = r[key], r[f"held_kb:contrib:{package}"]
            modules = f"{r[f'modules:obskit:{package}']:.0f}/{r[f'modules:contrib:{package}']:.0f}"
            print(f"  {package:<42}{mine:>11.0f}{theirs:>12.0f}{mine - theirs:>+11.0f}{modules:>12}")
    print(f"  modules loaded in all: obskit {r['obskit_modules']:.0f}, contrib {r['contrib_modules']:.0f}")
    print("Target: obskit RSS <= 1.1x contrib's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
