"""Print what a running sandbox holds: pretty JSON, or a compact table of contacts.

``python -m target_segmetrics.sandbox.show --url http://127.0.0.1:8765 [--requests] [--only contacts] [--table]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
import urllib.error
import urllib.request
from typing import Any

__all__ = ["contacts_table", "fetch", "main"]

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


TABLE_COLUMNS = ("contact_id", "email", "name", "status", "utm_source", "tags")


def _cell(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _width(text: str) -> int:
    """Columns the text takes in a terminal (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _row(contact: dict[str, Any]) -> tuple[str, ...]:
    name = " ".join(_cell(contact.get(part)) for part in ("first_name", "last_name") if contact.get(part))
    tags = ", ".join(_cell(tag.get("name") or tag.get("id")) for tag in contact.get("tags") or [])
    return (
        _cell(contact.get("contact_id")),
        _cell(contact.get("email")),
        name,
        _cell(contact.get("status")),
        _cell(contact.get("utm_source")),
        tags,
    )


def contacts_table(state: dict[str, Any]) -> str:
    """One line per contact (id, email, name, status, utm_source, tags), per account and integration;
    then how many other objects each integration holds."""
    lines: list[str] = []
    for account, held in state["accounts"].items():
        for integration, data in held["integrations"].items():
            contacts = data["contacts"]
            if lines:
                lines.append("")
            noun = "contact" if len(contacts) == 1 else "contacts"
            lines.append(f"account {account}, integration {integration}: {len(contacts)} {noun}")
            rows = [tuple(c.upper() for c in TABLE_COLUMNS), *(_row(c) for c in contacts)]
            widths = [max(_width(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS) - 1)]
            for row in rows:
                cells = [cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=False)]
                lines.append("  ".join([*cells, row[-1]]).rstrip())
            others = [f"{len(data[name])} {name}" for name in SECTIONS[1:] if data.get(name)]
            if others:
                lines.append("also held: " + ", ".join(others))
    return "\n".join(lines) if lines else "the sandbox holds no account"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="segmetrics-sandbox show", description="Print what a running SegMetrics sandbox holds."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="sandbox root URL")
    parser.add_argument("--requests", action="store_true", help="print the request log instead")
    parser.add_argument("--only", choices=SECTIONS, help="print only this section (per integration)")
    parser.add_argument(
        "--table",
        action="store_true",
        help="print the contacts as a table: one line per contact (id, email, name, status, utm_source, tags)",
    )
    args = parser.parse_args(argv)
    if args.table and (args.requests or args.only):
        parser.error("--table cannot be combined with --requests or --only")
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
    text = contacts_table(data) if args.table else json.dumps(data, indent=2, ensure_ascii=False)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `... | head`: the reader has seen enough; nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
