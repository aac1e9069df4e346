"""Print what a running sandbox holds as pretty JSON.

``python -m target_segmetrics.sandbox.show --url http://127.0.0.1:8765 [--requests] [--only contacts]``
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

__all__ = ["fetch", "main"]

SECTIONS = (
    "contacts",
    "tags",
    "invoices",
    "subscriptions",
    "products",
    "ad_performance",
    "ads",
    "adsets",
    "adcampaigns",
)


def fetch(url: str, what: str = "state", timeout: float = 10.0) -> Any:
    """GET ``<url>/_sandbox/<what>`` and decode the JSON answer."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    with urllib.request.urlopen(f"{url.rstrip('/')}/_sandbox/{what}", timeout=timeout) as reply:  # noqa: S310
        return json.loads(reply.read())


def _only(state: dict[str, Any], section: str) -> dict[str, Any]:
    """Keep one section of every integration's data."""
    return {
        account: {integration: data[section] for integration, data in held["integrations"].items()}
        for account, held in state["accounts"].items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="segmetrics-sandbox show", description="Print what a running SegMetrics sandbox holds."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="sandbox root URL")
    parser.add_argument("--requests", action="store_true", help="print the request log instead")
    parser.add_argument("--only", choices=SECTIONS, help="print only this section (per integration)")
    args = parser.parse_args(argv)
    url = args.url
    if "/api/v1" in url:  # accept the base URL too
        url = url.split("/api/v1", 1)[0]
    try:
        data = fetch(url, "requests" if args.requests else "state")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"segmetrics-sandbox show: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    if args.only and not args.requests:
        data = _only(data, args.only)
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
