"""``bench/run.py --waiting``: peak memory of what waits, 80k against 10k.

Each run is the target as its own process (peak RSS from ``wait4``), against the sandbox, on a fresh
store (the SQLite file, and PostgreSQL when its server programs are there):

- lookup rows: N rows of a lookup stream (``buyers``, about 1 KB each, no STATE among them), then N
  invoices whose email each is looked up in them;
- parked: N invoices whose lookup row never comes (parked, tried again at the end of the run), then a
  second run over the N rows they wait for (about 100 bytes each): the release sends the N invoices;
- kept for replay: N invoices rejected by their mapping (kept in the store), then a second run with the
  mapping fixed and no input: the replay sends the N invoices.

It prints the table and the peak RSS ratios for the larger N over the smaller one.
"""

from __future__ import annotations

import json
import sys
import tempfile
import typing as t
from pathlib import Path

from run import (
    BUYERS_SCHEMA,
    LOOKUP_MAPPINGS,
    ORDER_FIELDS,
    ORDER_ITEMS,
    ORDERS_SCHEMA,
    SandboxProcess,
    postgres_server,
    print_table,
    row,
    run_orders,
)

if t.TYPE_CHECKING:
    import argparse

NOTES = "x" * 1000
"""What makes a lookup row about 1 KB."""
REFUSING = {
    "orders": {
        "object": "invoice",
        "fields": {**ORDER_FIELDS, "email": "buyer", "amount": "price"},
        "items": ORDER_ITEMS,
    }
}
"""Invoices rejected by their mapping but the first ones (enough to pass the rejection breaker): their
amount is ``price``, "n/a"."""
SENT_FIRST = 100
FIXED = {"orders": {"object": "invoice", "fields": {**ORDER_FIELDS, "email": "buyer"}, "items": ORDER_ITEMS}}


def write_rows(out: t.TextIO, count: int, *, notes: str) -> None:
    """The ``buyers`` lookup stream: one row per order (its email), no STATE among them."""
    out.write(json.dumps({"type": "SCHEMA", "stream": "buyers", "schema": BUYERS_SCHEMA, "key_properties": []}))
    out.write("\n")
    for i in range(count):
        record = {"order": f"o{i}", "email": f"b{i}@example.com", "notes": notes}
        out.write(json.dumps({"type": "RECORD", "stream": "buyers", "record": record}) + "\n")


def write_invoices(out: t.TextIO, count: int) -> None:
    """N orders (invoices) whose email is looked up in ``buyers``, a STATE every 1000."""
    out.write(json.dumps({"type": "SCHEMA", "stream": "orders", "schema": ORDERS_SCHEMA, "key_properties": ["id"]}))
    out.write("\n")
    for i in range(count):
        order = {"id": f"o{i}", "buyer": f"b{i}@example.com", "total": 1000 + i}
        out.write(json.dumps({"type": "RECORD", "stream": "orders", "record": order}) + "\n")
        if (i + 1) % 1000 == 0 or i + 1 == count:
            out.write(json.dumps({"type": "STATE", "value": {"orders": i + 1}}) + "\n")


def write_final_state(out: t.TextIO) -> None:
    out.write(json.dumps({"type": "STATE", "value": {"buyers": "done"}}) + "\n")


def inputs(work: Path, n: int) -> dict[str, Path]:
    names = ("lookups", "parked", "released", "refused", "nothing")
    paths = {name: work / f"{name}-{n}.singer" for name in names}
    with paths["lookups"].open("w") as out:
        write_rows(out, n, notes=NOTES)
        write_invoices(out, n)
    with paths["parked"].open("w") as out:
        write_invoices(out, n)
    with paths["released"].open("w") as out:
        write_rows(out, n, notes="")
        write_final_state(out)
    with paths["parked"].open() as lines, paths["refused"].open("w") as out:
        for line in lines:
            message = json.loads(line)
            if message["type"] == "SCHEMA":
                message["schema"]["properties"]["price"] = {"type": ["integer", "string"]}
            if message["type"] == "RECORD":
                total = message["record"]["total"]
                message["record"]["price"] = total if total - 1000 < SENT_FIRST else "n/a"
            out.write(json.dumps(message) + "\n")
    paths["nothing"].write_text("")
    return paths


def check(result: dict, expected: int, label: str) -> None:
    if result["held"] != expected:
        raise SystemExit(f"{label}: the sandbox holds {result['held']} invoices, expected {expected}")


SCENARIOS = ("lookups", "parked", "replay")


def measure(
    sandbox: SandboxProcess, work: Path, n: int, rows: list[dict], backend: str, server: t.Any, only: t.Container[str]
) -> None:
    paths = inputs(work, n)
    mappings = LOOKUP_MAPPINGS["lookup"]
    suffix = "" if backend == "sqlite" else ", PostgreSQL store"

    def url() -> str | None:
        return server.new_database() if server is not None else None

    if "lookups" in only:
        label = f"lookup rows (1 KB) then invoices reading them{suffix}"
        result = run_orders(sandbox, paths["lookups"], mappings, work, f"{backend}-lookups-{n}", store_url=url())
        check(result, n, label)
        rows.append(row(label, n, result, f"{result['requests']} requests"))
    if "parked" in only:
        parked(sandbox, work, n, rows, paths, backend, url())
    if "replay" in only:
        replay(sandbox, work, n, rows, paths, backend, url())


def parked(
    sandbox: SandboxProcess, work: Path, n: int, rows: list[dict], paths: dict, backend: str, store_url: str | None
) -> None:
    mappings = LOOKUP_MAPPINGS["lookup"]
    suffix = "" if backend == "sqlite" else ", PostgreSQL store"

    label = f"invoices parked (their lookup row never comes){suffix}"
    result = run_orders(sandbox, paths["parked"], mappings, work, f"{backend}-parked-{n}", store_url=store_url)
    check(result, 0, label)
    rows.append(row(label, n, result, f"{result['requests']} requests"))
    label = f"next run: their rows come, the release sends them{suffix}"
    result = run_orders(sandbox, paths["released"], mappings, work, f"{backend}-parked-{n}", store_url=store_url)
    check(result, n, label)
    rows.append(row(label, n, result, f"{result['requests']} requests"))


def replay(
    sandbox: SandboxProcess, work: Path, n: int, rows: list[dict], paths: dict, backend: str, store_url: str | None
) -> None:
    suffix = "" if backend == "sqlite" else ", PostgreSQL store"
    label = f"invoices rejected by their mapping (kept for replay){suffix}"
    result = run_orders(sandbox, paths["refused"], REFUSING, work, f"{backend}-replay-{n}", store_url=store_url)
    check(result, SENT_FIRST, label)
    rows.append(row(label, n, result, f"{result['requests']} requests"))
    label = f"next run, mapping fixed, no input: the replay sends them{suffix}"
    result = run_orders(sandbox, paths["nothing"], FIXED, work, f"{backend}-replay-{n}", store_url=store_url)
    check(result, n - SENT_FIRST, label)
    rows.append(row(label, n, result, f"{result['requests']} requests"))


def ratios(rows: list[dict], small: int, large: int) -> dict:
    by = {(r["run"], r["records"]): r for r in rows}
    out = {}
    for name in dict.fromkeys(r["run"] for r in rows):
        if (name, small) in by and (name, large) in by:
            out[f"peak RSS {large} / {small}: {name}"] = round(
                by[(name, large)]["peak_rss_mb"] / by[(name, small)]["peak_rss_mb"], 3
            )
    return out


def only_waiting(args: argparse.Namespace) -> int:
    """``--waiting``: the memory of lookup rows and parked records, N and 8N."""
    small, large = (2000, 16000) if args.quick else (10_000, 80_000)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sandbox = SandboxProcess(0)
        server = None if args.no_postgres else postgres_server()
        try:
            for backend in ("sqlite", "postgres") if server is not None else ("sqlite",):
                for n in (small, large):
                    print(f"== waiting: {n} records, {backend} store", file=sys.stderr)
                    only = args.waiting_only or SCENARIOS
                    measure(sandbox, work, n, rows, backend, server if backend == "postgres" else None, only)
        finally:
            if server is not None:
                server.stop()
            sandbox.stop()
    print_table(rows, ratios(rows, small, large))
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "waiting.json").write_text(json.dumps({"rows": rows, "ratios": ratios(rows, small, large)}, indent=2))
    return 0
