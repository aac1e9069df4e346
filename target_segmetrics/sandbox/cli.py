"""``segmetrics-sandbox`` / ``python -m target_segmetrics.sandbox``: run the sandbox in the foreground.

``segmetrics-sandbox show [--url ...]`` is the same as ``python -m target_segmetrics.sandbox.show``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .faults import Faults

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segmetrics-sandbox",
        description="Run a strict local stand-in for the SegMetrics import API "
        "(use the subcommand 'show' to print what a running sandbox holds).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = any free port; default 8765)")
    parser.add_argument("--api-key", default="demo-key", help="API key expected in 'Authorization'")
    parser.add_argument("--account-id", default="demo", help="account id in the URL")
    parser.add_argument(
        "--integration-id",
        action="append",
        dest="integration_ids",
        metavar="ID",
        help="integration id in the URL (repeatable; default demo-int)",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--log-limit", type=int, default=100_000, help="requests kept in the log")
    faults = parser.add_argument_group("fault injection (probabilities per request, 0..1)")
    faults.add_argument("--error-rate", type=float, default=0.0, help="answer --error-status, write not applied")
    faults.add_argument("--error-status", type=int, default=503)
    faults.add_argument("--throttle-rate", type=float, default=0.0, help="answer 429, write not applied")
    faults.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="close the connection, write not applied")
    faults.add_argument("--lost-reply-rate", type=float, default=0.0, help="apply the write, close without answer")
    faults.add_argument("--slow-rate", type=float, default=0.0, help="apply the write, answer after --slow-ms")
    faults.add_argument("--slow-ms", type=int, default=1000)
    faults.add_argument("--seed", type=int, default=None, help="random seed for fault injection")
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["show"]:
        from .show import main as show_main

        return show_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        from .server import Sandbox
    except ModuleNotFoundError as exc:
        if exc.name != "aiohttp" and not (exc.name or "").startswith("aiohttp."):
            raise
        print(
            "segmetrics-sandbox: the sandbox needs aiohttp, which is not installed: "
            "pip install 'target-segmetrics[sandbox]'",
            file=sys.stderr,
        )
        return 2
    integration_ids = tuple(args.integration_ids or ["demo-int"])
    rates = (args.error_rate, args.throttle_rate, args.drop_rate, args.lost_reply_rate, args.slow_rate)
    faults = None
    if any(rates):
        faults = Faults(
            error_rate=args.error_rate,
            error_status=args.error_status,
            throttle_rate=args.throttle_rate,
            retry_after=args.retry_after,
            drop_rate=args.drop_rate,
            lost_reply_rate=args.lost_reply_rate,
            slow_rate=args.slow_rate,
            slow_ms=args.slow_ms,
            seed=args.seed,
        )
    sandbox = Sandbox(
        api_key=args.api_key,
        account_id=args.account_id,
        integration_ids=integration_ids,
        latency_ms=args.latency_ms,
        port=args.port,
        host=args.host,
        faults=faults,
        log_limit=args.log_limit,
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sandbox.start()
        except OSError as exc:
            print(f"segmetrics-sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        label = "integration" if len(integration_ids) == 1 else "integrations"
        print(
            f"SegMetrics sandbox listening on {sandbox.base_url} "
            f"(account {args.account_id}, {label} {', '.join(integration_ids)})",
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
