"""Throughput benchmark: target-segmetrics against the local sandbox, side by side with baselines.

    .venv/bin/python bench/run.py            # the full table (a few minutes)
    .venv/bin/python bench/run.py --quick    # smaller inputs, for a smoke check

In one run, against the project's sandbox (its own process; latency is a non-blocking sleep) and N
synthetic HubSpot-shaped contacts (MeltanoLabs tap-hubspot records, `hubspot` preset), it measures:

- the target at `max_concurrency` 32 (and the default, 16),
- the same target with `max_concurrency: 1` (a one-at-a-time sender),
- a bare `requests.Session` loop posting the same payloads, one at a time (this machine's HTTP floor),
- at 100 ms latency, the ideal `max_concurrency / latency`,
- `skip_unchanged`: a first run filling the store, then a second run over the same input (nothing
  changed: no request should be sent),
- the store in PostgreSQL (`state_db_url`, a server started on 127.0.0.1 for the run, as the tests
  do) against the SQLite file: the same skip_unchanged runs and the lookup/parked invoices,
- a large STATE: the same contacts with a 14 MB STATE (200k partition bookmarks) every 1000
  records, against the small one (`--large-state` runs only this, in alternating pairs),
- what waits (`--waiting` runs only this, see bench/waiting.py): peak memory with 10k and 80k lookup
  rows of 1 KB, and 10k and 80k parked records released by a second run,

and prints records/s, CPU seconds per record, peak RSS (each run is its own process; figures from
`wait4`), the sandbox's peak requests in flight, and ratios computed within this one run. Results
also go to `bench/results/latest.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.request
from pathlib import Path

from tag_costs import tag_costs, write_contacts

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET = str(Path(PYTHON).parent / "target-segmetrics")
KEY = "bench-key-5f0e"
ACCOUNT = "bench"
INTEGRATION = "int"
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
SOURCES = ["ORGANIC_SEARCH", "PAID_SOCIAL", "EMAIL_MARKETING", "DIRECT_TRAFFIC", "REFERRALS", "OFFLINE"]


# --- input -----------------------------------------------------------------------------------------


def write_input(path: Path, count: int, seed: int = 7) -> None:
    """N contacts shaped like meltano-tap-hubspot's, with a STATE every 1000 records."""
    fixture = (ROOT / "tests/fixtures/hubspot/meltanolabs_contacts.singer").read_text().splitlines()
    schema_line = next(line for line in fixture if '"SCHEMA"' in line)
    rng = random.Random(seed)
    with path.open("w") as out:
        out.write(schema_line + "\n")
        for i in range(count):
            created = (
                f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z"
            )
            properties = {
                "company": f"Company {i % 997}" if i % 5 else None,
                "createdate": created,
                "email": f"contact{i}@example.com",
                "firstname": rng.choice(["Alice", "Zoë", "伟", "Sam", "Marcus", ""]),
                "hs_analytics_first_referrer": "https://www.google.com/" if i % 3 else None,
                "hs_analytics_first_timestamp": created,
                "hs_analytics_first_url": f"https://www.example.com/landing/{i % 50}?utm_source=x",
                "hs_analytics_num_page_views": str(i % 40),
                "hs_analytics_num_visits": str(i % 9),
                "hs_analytics_source": SOURCES[i % len(SOURCES)],
                "hs_analytics_source_data_1": f"campaign-{i % 20}",
                "hs_analytics_source_data_2": None,
                "hs_email_optout": "false",
                "hs_ip_timezone": "Europe/Berlin",
                "hs_lead_status": "NEW" if i % 2 else None,
                "hs_object_id": str(100000 + i),
                "hs_timezone": None,
                "interests": "webinars;ebooks",
                "ip_city": "Berlin",
                "ip_country": "germany",
                "jobtitle": "Engineer" if i % 4 else None,
                "lastmodifieddate": created,
                "lastname": f"Person{i}",
                "lifecyclestage": STAGES[i % len(STAGES)],
                "phone": f"+49 30 {i:07d}",
            }
            record = {
                "id": str(100000 + i),
                "properties": properties,
                "createdAt": created,
                "updatedAt": created,
                "archived": False,
                "lastmodifieddate": created,
            }
            out.write(json.dumps({"type": "RECORD", "stream": "contacts", "record": record}) + "\n")
            if (i + 1) % 1000 == 0 or i + 1 == count:
                state = {"bookmarks": {"contacts": {"replication_key_value": created, "n": i + 1}}}
                out.write(json.dumps({"type": "STATE", "value": state}) + "\n")


LARGE_STATE_PARTITIONS = 140_000
"""Partition bookmarks in the large STATE: about 14 MB of JSON."""


def write_with_states(singer: Path, out: Path, every: int, *, large: bool) -> None:
    """The records of ``singer`` with a STATE after every ``every`` records (and at the end): a small
    one, or a large one (a bookmark per partition, floats included)."""
    partitions = ",".join(
        f'{{"context":{{"portal":"p{i}"}},"replication_key":"updated","replication_key_value":{1717171717 + i}.5}}'
        for i in range(LARGE_STATE_PARTITIONS if large else 1)
    )
    seen = 0
    with singer.open() as lines, out.open("w") as sink:
        for line in lines:
            if '"STATE"' in line:
                continue
            sink.write(line)
            if '"RECORD"' in line:
                seen += 1
                if seen % every == 0:
                    value = f'{{"bookmarks":{{"contacts":{{"n":{seen},"partitions":[{partitions}]}}}}}}'
                    sink.write(f'{{"type":"STATE","value":{value}}}\n')
        if seen % every:
            value = f'{{"bookmarks":{{"contacts":{{"n":{seen},"partitions":[{partitions}]}}}}}}'
            sink.write(f'{{"type":"STATE","value":{value}}}\n')


def large_state_costs(
    sandbox: SandboxProcess, singer: Path, work: Path, n: int, rows: list[dict], pairs: int, every: int = 1000
) -> None:
    """Wall time and CPU with a 14 MB STATE / a small one every ``every`` records, in alternating pairs."""
    small, large = work / f"contacts-{n}-small-state.singer", work / f"contacts-{n}-large-state.singer"
    write_with_states(singer, small, every, large=False)
    write_with_states(singer, large, every, large=True)
    size = max(len(line) for line in large.open() if '"STATE"' in line) / 1e6
    for _ in range(pairs):
        small_run = run_target(sandbox, small, 32, work)
        rows.append(row(f"small STATE every {every} records", n, small_run, f"{small_run['states']} STATE lines"))
        large_run = run_target(sandbox, large, 32, work)
        note = f"{large_run['states']} STATE lines of {size:.1f} MB"
        rows.append(row(f"14 MB STATE every {every} records", n, large_run, note))


def large_state_ratios(rows: list[dict]) -> dict:
    small = [r for r in rows if r["run"].startswith("small STATE every")]
    large = [r for r in rows if r["run"].startswith("14 MB STATE every")]
    if not small or not large:
        return {}
    return {
        "large STATE: time, 14 MB STATE / small STATE (pairs)": [
            round(b["seconds"] / a["seconds"], 2) for a, b in zip(small, large, strict=True)
        ],
        "large STATE: CPU, 14 MB STATE / small STATE (pairs)": [
            round(b["cpu_ms_per_record"] / a["cpu_ms_per_record"], 2) for a, b in zip(small, large, strict=True)
        ],
        "large STATE: peak RSS, 14 MB STATE / small STATE (pairs)": [
            round(b["peak_rss_mb"] / a["peak_rss_mb"], 2) for a, b in zip(small, large, strict=True)
        ],
    }


def print_table(rows: list[dict], ratios: dict) -> None:
    header = [
        "run",
        "records",
        "seconds",
        "records_per_s",
        "cpu_ms_per_record",
        "peak_rss_mb",
        "peak_in_flight",
        "held",
        "note",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r[h]) for h in header) + " |")
    print()
    for name, value in ratios.items():
        print(f"- {name}: {value}")


def only_large_state(args: argparse.Namespace) -> int:
    """``--large-state``: only the large-STATE pairs (a minute, not the whole table)."""
    n = 2000 if args.quick else 10000
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        singer = work / f"contacts-{n}.singer"
        write_input(singer, n)
        print(f"== large STATE: {n} contacts, latency 0 ms", file=sys.stderr)
        sandbox = SandboxProcess(0)
        try:
            large_state_costs(sandbox, singer, work, n, rows, pairs=3, every=args.state_every)
        finally:
            sandbox.stop()
    print_table(rows, large_state_ratios(rows))
    return 0


def only_goals(args: argparse.Namespace) -> int:
    """``--goals``: only the rows the speed goals are read from (the bare loop and the target at 0 ms, the
    target at 100 ms with 32 and 16 in flight, the three skip_unchanged runs), in one run."""
    small, large, slow_n = (2000, 10000, 600) if args.quick else (10000, 100000, 6000)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = {n: work / f"contacts-{n}.singer" for n in (small, large)}
        for n, path in inputs.items():
            write_input(path, n)
        payloads = work / "payloads.jsonl"
        write_payloads(inputs[small], payloads)
        print(f"== goals, latency 0 ms: {small} and {large} contacts", file=sys.stderr)
        sandbox = SandboxProcess(0)
        try:
            rows.append(row("bare requests.Session loop", small, run_bare(sandbox, payloads)))
            result = run_target(sandbox, inputs[small], 32, work)
            rows.append(row("target max_concurrency=32", small, result, f"{result['states']} STATE lines"))
            store = work / "sent.sqlite3"
            first = run_target(sandbox, inputs[large], 32, work, store=store)
            rows.append(row("skip_unchanged, first run", large, first, f"{first['requests']} requests"))
            second = run_target(sandbox, inputs[large], 32, work, store=store)
            rows.append(
                row("skip_unchanged, second run, nothing changed", large, second, f"{second['requests']} requests")
            )
            one_percent = changed_copy(inputs[large], 100, work / "one-percent.singer")
            third = run_target(sandbox, one_percent, 32, work, store=store, reset=False)
            rows.append(row("skip_unchanged, third run, 1% changed", large, third, f"{third['requests']} requests"))
        finally:
            sandbox.stop()
        print(f"== goals, latency 100 ms: {slow_n} contacts", file=sys.stderr)
        sandbox = SandboxProcess(100)
        try:
            slow_input = prefix(inputs[small], slow_n, work / "slow.singer")
            window_rows(sandbox, slow_input, slow_n, work, rows)
        finally:
            sandbox.stop()
    by = {r["run"] + f"/{r['records']}": r for r in rows}
    fast100 = by[f"target max_concurrency=32 @100ms/{slow_n}"]
    first_row = by[f"skip_unchanged, first run/{large}"]
    ratios = {
        "100ms: target(32) requests/s / ideal 320 requests/s": round(
            int(fast100["note"].split()[0]) / fast100["seconds"] / 320, 2
        ),
        "100ms: target(32), the preset's MeltanoLabs first run, contacts/s": fast100["records_per_s"],
        f"store: second run (nothing changed) time / first run time ({large})": round(
            by[f"skip_unchanged, second run, nothing changed/{large}"]["seconds"] / first_row["seconds"], 3
        ),
        f"store: third run (1% of the contacts changed) time / first run time ({large})": round(
            by[f"skip_unchanged, third run, 1% changed/{large}"]["seconds"] / first_row["seconds"], 3
        ),
        "0ms: CPU ms per record, target(32) / bare loop per request": round(
            by[f"target max_concurrency=32/{small}"]["cpu_ms_per_record"]
            / by[f"bare requests.Session loop/{small}"]["cpu_ms_per_record"],
            3,
        ),
    }
    print_table(rows, ratios)
    return 0


def window_rows(sandbox: SandboxProcess, slow_input: Path, slow_n: int, work: Path, rows: list[dict]) -> None:
    """The target at 100 ms with 32 and 16 in flight, each against its ideal (``max_concurrency / latency``)."""
    for concurrency in (32, 16):
        result = run_target(sandbox, slow_input, concurrency, work)
        rows.append(
            row(
                f"target max_concurrency={concurrency} @100ms",
                slow_n,
                result,
                f"{result['requests']} requests, {result['requests'] / result['wall']:.1f} requests/s "
                f"(ideal {concurrency / 0.1:.0f} requests/s)",
            )
        )


def write_payloads(singer: Path, out: Path) -> None:
    """The exact contact payloads the target would send, for the bare loop."""
    sys.path.insert(0, str(ROOT))
    from target_segmetrics.mapping.compiler import compile_entry
    from target_segmetrics.mapping.presets import PRESETS

    mapping = compile_entry("contacts", {"preset": "hubspot"}, PRESETS)
    with singer.open() as lines, out.open("w") as sink:
        for line in lines:
            message = json.loads(line)
            if message["type"] == "RECORD":
                mapped = mapping.map(message["record"])
                for request in mapped.requests:
                    sink.write(json.dumps(request.body) + "\n")


# --- processes --------------------------------------------------------------------------------------


class SandboxProcess:
    def __init__(self, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "target_segmetrics.sandbox",
                "--port",
                "0",
                "--api-key",
                KEY,
                "--account-id",
                ACCOUNT,
                "--integration-id",
                INTEGRATION,
                "--latency-ms",
                str(latency_ms),
                "--log-limit",
                "1000",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            raise SystemExit(f"the sandbox did not start: {line!r}")
        self.base_url = line.split("listening on ")[1].split()[0]
        self.root = self.base_url.split("/api/v1")[0]

    def call(self, what: str, method: str = "GET") -> dict:
        request = urllib.request.Request(f"{self.root}/_sandbox/{what}", method=method)
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def measured(argv: list[str], stdin_path: Path | None = None, code_dir: Path | None = None) -> dict:
    """Run one process to completion; wall time, CPU and peak RSS of that process alone (wait4).
    ``code_dir``: run the package from that checkout instead (``--against``)."""
    env = {**os.environ, "PYTHONPATH": str(code_dir)} if code_dir else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = stdin_path.open() if stdin_path else subprocess.DEVNULL
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if stdin_path:
            stdin.close()
        out.seek(0)
        err.seek(0)
        # Counted a chunk at a time, never held (STATE lines of 14 MB): a child's peak RSS starts from
        # this process's own at fork.
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b""))
        stderr = err.read().decode()
    if code != 0:
        sys.stderr.write(stderr[-3000:])
        raise SystemExit(f"{argv[0]} exited {code}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "stdout_lines": lines,
        "stderr": stderr,
    }


def target_config(sandbox: SandboxProcess, mappings: dict, concurrency: int, **extra: t.Any) -> dict:
    """The target's config for a run against the benchmark's sandbox."""
    return {
        "api_key": KEY,
        "account_id": ACCOUNT,
        "integration_id": INTEGRATION,
        "api_url": sandbox.base_url,
        "mappings": mappings,
        "max_concurrency": concurrency,
        **extra,
    }


def run_target(
    sandbox: SandboxProcess,
    singer: Path,
    concurrency: int,
    workdir: Path,
    *,
    store: Path | None = None,
    store_url: str | None = None,
    code_dir: Path | None = None,
    reset: bool = True,
) -> dict:
    config = target_config(sandbox, {"contacts": {"preset": "hubspot"}}, concurrency)
    if store is not None:
        config.update(skip_unchanged=True, state_db_path=str(store))
    if store_url is not None:
        config.update(skip_unchanged=True, state_db_url=store_url)
    return run_config(sandbox, config, singer, workdir / f"config-{concurrency}.json", code_dir=code_dir, reset=reset)


def changed_copy(singer: Path, every: int, out: Path) -> Path:
    """The input with every ``every``-th contact's job title changed (its tags unchanged)."""
    seen = 0
    with singer.open() as lines, out.open("w") as sink:
        for line in lines:
            text = line
            if '"RECORD"' in line:
                if seen % every == 0:
                    message = json.loads(line)
                    message["record"]["properties"]["jobtitle"] = "Principal Engineer"
                    text = json.dumps(message) + "\n"
                seen += 1
            sink.write(text)
    return out


def run_config(
    sandbox: SandboxProcess,
    config: dict,
    singer: Path,
    config_path: Path,
    *,
    code_dir: Path | None = None,
    held: str = "contacts",
    reset: bool = True,
) -> dict:
    """One run of the target with ``config`` over ``singer`` on a reset sandbox (``reset`` False: on what it
    holds, an incremental run), and what it holds after."""
    config_path.write_text(json.dumps(config))
    if reset:
        sandbox.call("reset", "POST")
    before = sandbox.call("stats")["request_count"]
    result = measured([TARGET, "--config", str(config_path)], singer, code_dir)
    stats = sandbox.call("stats")
    result["peak_in_flight"] = stats["peak_in_flight"]
    result["held"] = stats["held"][INTEGRATION][held]
    result["requests"] = stats["request_count"] - before
    result["states"] = result["stdout_lines"]
    return result


BARE_LOOP = """
import json, sys, requests
url, key, path = sys.argv[1:4]
session = requests.Session()
session.headers.update({"Authorization": key, "Content-Type": "application/json"})
with open(path) as lines:
    for line in lines:
        reply = session.post(url, data=line.rstrip("\\n").encode())
        reply.raise_for_status()
"""


def run_bare(sandbox: SandboxProcess, payloads: Path) -> dict:
    sandbox.call("reset", "POST")
    url = f"{sandbox.base_url}/{ACCOUNT}/{INTEGRATION}/contact"
    result = measured([PYTHON, "-c", BARE_LOOP, url, KEY, str(payloads)])
    stats = sandbox.call("stats")
    result["peak_in_flight"] = stats["peak_in_flight"]
    result["held"] = stats["held"][INTEGRATION]["contacts"]
    return result


def store_pairs(sandbox: SandboxProcess, singer: Path, work: Path, pairs: int = 3) -> list[float]:
    """CPU per record with a fresh store / without, in alternating runs (the fairest comparison on a
    noisy machine): one ratio per pair."""
    ratios = []
    for i in range(pairs):
        without = run_target(sandbox, singer, 32, work)
        with_store = run_target(sandbox, singer, 32, work, store=work / f"pair-{i}.sqlite3")
        ratios.append(with_store["cpu"] / without["cpu"])
    return ratios


ORDERS_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "buyer": {"type": "string"}, "total": {"type": "integer"}},
}
BUYERS_SCHEMA = {"type": "object", "properties": {"order": {"type": "string"}, "email": {"type": "string"}}}
ORDER_FIELDS = {"id": "id", "amount": "total", "paid": "total", "date_created": {"value": "2024-05-01"}}
ORDER_ITEMS = {"fields": {"name": {"value": "Plan"}, "product_id": {"value": "plan"}, "amount": "total"}}
LOOKUP_MAPPINGS = {
    "direct": {"orders": {"object": "invoice", "fields": {**ORDER_FIELDS, "email": "buyer"}, "items": ORDER_ITEMS}},
    "lookup": {
        "buyers": {"lookup": {"key": "order"}},
        "orders": {
            "object": "invoice",
            "fields": {**ORDER_FIELDS, "email": {"lookup": "buyers", "key": "id", "field": "email"}},
            "items": ORDER_ITEMS,
        },
    },
}


def write_orders(path: Path, count: int, *, buyers: bool) -> None:
    """N invoices (email given directly, or looked up in a ``buyers`` stream emitted first)."""
    with path.open("w") as out:
        if buyers:
            out.write(json.dumps({"type": "SCHEMA", "stream": "buyers", "schema": BUYERS_SCHEMA, "key_properties": []}))
            out.write("\n")
            for i in range(count):
                row = {"order": f"o{i}", "email": f"b{i}@example.com"}
                out.write(json.dumps({"type": "RECORD", "stream": "buyers", "record": row}) + "\n")
        out.write(json.dumps({"type": "SCHEMA", "stream": "orders", "schema": ORDERS_SCHEMA, "key_properties": ["id"]}))
        out.write("\n")
        for i in range(count):
            order = {"id": f"o{i}", "buyer": f"b{i}@example.com", "total": 1000 + i}
            out.write(json.dumps({"type": "RECORD", "stream": "orders", "record": order}) + "\n")
            if (i + 1) % 1000 == 0:
                out.write(json.dumps({"type": "STATE", "value": {"orders": i + 1}}) + "\n")


def run_orders(
    sandbox: SandboxProcess, singer: Path, mappings: dict, workdir: Path, name: str, store_url: str | None = None
) -> dict:
    config = target_config(sandbox, mappings, 32, state_db_path=str(workdir / f"{name}.sqlite3"))
    if store_url is not None:
        config["state_db_url"] = store_url
    return run_config(sandbox, config, singer, workdir / f"config-{name}.json", held="invoices")


def lookup_costs(sandbox: SandboxProcess, work: Path, n: int, rows: list[dict], server=None) -> None:
    """CPU per record: invoices with the email in the record, looked up in another stream, and
    parked (the lookup stream never came): same run, same sandbox. ``server``: in PostgreSQL too."""
    direct, looked, parked = work / "orders.singer", work / "orders-lookup.singer", work / "orders-parked.singer"
    write_orders(direct, n, buyers=False)
    write_orders(looked, n, buyers=True)
    write_orders(parked, n, buyers=False)
    for label, singer, mappings, name in (
        ("invoices, email in the record", direct, LOOKUP_MAPPINGS["direct"], "direct"),
        ("invoices, email by lookup (+ as many lookup rows)", looked, LOOKUP_MAPPINGS["lookup"], "lookup"),
        ("invoices parked (lookup finds nothing)", parked, LOOKUP_MAPPINGS["lookup"], "parked"),
    ):
        result = run_orders(sandbox, singer, mappings, work, name)
        rows.append(row(label, n, result, f"{result['requests']} requests"))
        if server is not None and name != "direct":
            result = run_orders(sandbox, singer, mappings, work, f"pg-{name}", store_url=server.new_database())
            rows.append(row(f"{label}, PostgreSQL store", n, result, f"{result['requests']} requests"))


def preset_waits(sandbox: SandboxProcess, singer: Path, work: Path, n: int, rows: list[dict]) -> None:
    """The hubspot preset's first run with the MeltanoLabs ``properties`` stream after the contacts:
    listed, every contact waits for it (parked until the end of the run); not listed, none waits."""
    properties = (ROOT / "tests/fixtures/hubspot/meltanolabs_properties.singer").read_text()
    joined = work / "contacts-then-properties.singer"
    joined.write_text(singer.read_text() + properties)
    for label, mappings in (
        ("preset, properties not listed", {"contacts": {"preset": "hubspot"}}),
        (
            "preset, properties listed (contacts wait for it)",
            {"contacts": {"preset": "hubspot"}, "properties": {"preset": "hubspot"}},
        ),
    ):
        name = "waits" if "listed (" in label else "nowait"
        config = target_config(sandbox, mappings, 32, state_db_path=str(work / f"{name}.sqlite3"))
        result = run_config(sandbox, config, joined, work / f"config-{name}.json")
        rows.append(row(label, n, result, f"{result['requests']} requests"))


TAG_SUMMARY: dict[str, t.Any] = {}
"""The hubspot preset's cost per contact, filled by :func:`tag_rows`."""


def tag_rows(sandbox: SandboxProcess, work: Path, n: int, rows: list[dict]) -> None:
    """The hubspot preset per tap variant: requests per contact on a first run and incremental runs."""

    def config(mappings: dict, **extra: t.Any) -> dict:
        return target_config(sandbox, mappings, 32, **extra)

    def run(cfg: dict, singer: Path, path: Path, reset: bool) -> dict:
        return run_config(sandbox, cfg, singer, path, reset=reset)

    found = tag_costs(run, config, work, n)
    first: dict[str, float] = {}
    for entry in found:
        per = entry["requests"] / entry["changed"]
        label = f"preset {entry['variant']}, {entry['run']}"
        rows.append(
            row(
                label,
                entry["records"],
                entry["result"],
                f"{entry['requests']} requests, {per:.2f} per changed contact, "
                f"{entry['requests'] / entry['records']:.2f} per record",
            )
        )
        TAG_SUMMARY[f"{label}: requests per changed contact"] = round(per, 2)
        if entry["run"].startswith("first"):
            first[entry["variant"]] = entry["seconds"]
            TAG_SUMMARY[f"{label}: CPU ms per contact"] = round(1000 * entry["cpu"] / entry["contacts"], 3)
        if entry["run"] == "1% changed":
            TAG_SUMMARY[f"preset {entry['variant']}: 1% changed / first run, time"] = round(
                entry["seconds"] / first[entry["variant"]], 3
            )


def postgres_server():
    """A PostgreSQL server on 127.0.0.1 for this run (tests/pg_server.py), or None with the reason."""
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_server import PostgresServer, ServerUnavailableError

    try:
        return PostgresServer().start()
    except (ServerUnavailableError, OSError, subprocess.SubprocessError) as exc:
        print(f"(no PostgreSQL rows: {exc})", file=sys.stderr)
        return None


def prefix(singer: Path, records: int, out: Path) -> Path:
    """The first ``records`` records of an input (with its schema and the STATEs among them)."""
    seen = 0
    with singer.open() as lines, out.open("w") as sink:
        for line in lines:
            if '"RECORD"' in line:
                if seen == records:
                    break
                seen += 1
            sink.write(line)
    return out


# --- the table ----------------------------------------------------------------------------------------


def row(label: str, n: int, result: dict, extra: str = "") -> dict:
    rate = n / result["wall"]
    return {
        "run": label,
        "records": n,
        "seconds": round(result["wall"], 2),
        "records_per_s": round(rate, 1),
        "cpu_ms_per_record": round(1000 * result["cpu"] / n, 3),
        "peak_rss_mb": round(result["rss_mb"], 1),
        "peak_in_flight": result.get("peak_in_flight"),
        "held": result.get("held"),
        "note": extra,
    }


def compare(rev: str, large_input: Path, slow_input: Path, small_input: Path, work: Path, rows: list[dict]) -> None:
    """This checkout against commit ``rev``: the 0 ms large run and the 100 ms run, in alternating pairs, and
    ``skip_unchanged`` (a first run, an unchanged one, one in which 1% changed: each side its own store)."""
    old = work / "against"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), rev], cwd=ROOT, check=True, capture_output=True)
    try:
        print(f"== compare with {rev}: skip_unchanged", file=sys.stderr)
        sandbox = SandboxProcess(0)
        try:
            n = sum(1 for line in small_input.open() if '"RECORD"' in line)
            one_percent = changed_copy(small_input, 100, work / "compare-one-percent.singer")
            for name, code_dir in (("this", None), (rev, old)):
                store = work / f"compare-{name}.sqlite3"
                for run_name, singer, reset in (
                    ("first run", small_input, True),
                    ("nothing changed", small_input, True),
                    ("1% changed", one_percent, False),
                ):
                    result = run_target(sandbox, singer, 32, work, store=store, code_dir=code_dir, reset=reset)
                    rows.append(row(f"compare skip_unchanged {run_name} {name}", n, result))
        finally:
            sandbox.stop()
        for latency, singer, label, times in ((0, large_input, "0ms", 1), (100, slow_input, "100ms", 2)):
            print(f"== compare with {rev} at {latency} ms", file=sys.stderr)
            sandbox = SandboxProcess(latency)
            try:
                n = sum(1 for line in singer.open() if '"RECORD"' in line)
                for _ in range(times):
                    for name, code_dir in (("this", None), (rev, old)):
                        result = run_target(sandbox, singer, 32, work, code_dir=code_dir)
                        rows.append(row(f"compare {label} {name} max_concurrency=32", n, result))
            finally:
                sandbox.stop()
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)


def postgres_ratios(by: dict, large: int, small: int) -> dict:
    """The store in PostgreSQL / in the SQLite file, same input, same run."""
    pairs = {
        f"skip_unchanged first run ({large})": ("skip_unchanged, first run", large),
        f"skip_unchanged second run, nothing changed ({large})": ("skip_unchanged, second run, nothing changed", large),
        f"invoices by lookup ({small})": ("invoices, email by lookup (+ as many lookup rows)", small),
        f"invoices parked ({small})": ("invoices parked (lookup finds nothing)", small),
    }
    out = {}
    for name, (label, n) in pairs.items():
        pg, lite = by.get(f"{label}, PostgreSQL store/{n}"), by.get(f"{label}/{n}")
        if pg and lite:
            out[f"PostgreSQL / SQLite store, {name}: time"] = round(pg["seconds"] / lite["seconds"], 3)
            out[f"PostgreSQL / SQLite store, {name}: CPU of the target"] = round(
                pg["cpu_ms_per_record"] / lite["cpu_ms_per_record"], 3
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs (smoke check)")
    parser.add_argument("--full-serial", action="store_true", help="run max_concurrency 1 at 100 ms on the whole input")
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also run an earlier commit's target (same inputs, same run, alternating) and print the ratios",
    )
    parser.add_argument("--large-state", action="store_true", help="run only the large-STATE pairs")
    parser.add_argument("--state-every", type=int, default=1000, help="with --large-state: records between STATEs")
    parser.add_argument(
        "--waiting", action="store_true", help="run only the memory of lookup rows and parked records (waiting.py)"
    )
    parser.add_argument("--no-postgres", action="store_true", help="with --waiting: the SQLite store only")
    parser.add_argument(
        "--waiting-only",
        action="append",
        choices=("lookups", "parked", "replay"),
        help="with --waiting: only this scenario (repeatable)",
    )
    parser.add_argument("--goals", action="store_true", help="run only the rows the speed goals are read from")
    args = parser.parse_args()
    if args.large_state:
        return only_large_state(args)
    if args.goals:
        return only_goals(args)
    if args.waiting:
        from waiting import only_waiting  # it imports this module's helpers

        return only_waiting(args)
    small, large, slow_n, serial_n = (2000, 10000, 600, 60) if args.quick else (10000, 100000, 6000, 300)

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = {}
        for n in (small, large):
            inputs[n] = work / f"contacts-{n}.singer"
            write_input(inputs[n], n)
        payloads = work / "payloads.jsonl"
        write_payloads(inputs[small], payloads)

        print(f"== latency 0 ms: {small} and {large} contacts", file=sys.stderr)
        sandbox = SandboxProcess(0)
        try:
            bare = run_bare(sandbox, payloads)
            rows.append(row("bare requests.Session loop", small, bare))
            for concurrency in (32, 16):
                for n in (small, large):
                    result = run_target(sandbox, inputs[n], concurrency, work)
                    rows.append(
                        row(f"target max_concurrency={concurrency}", n, result, f"{result['states']} STATE lines")
                    )
            serial = run_target(sandbox, inputs[small], 1, work)
            rows.append(row("target max_concurrency=1", small, serial))
            store = work / "sent.sqlite3"
            first = run_target(sandbox, inputs[large], 32, work, store=store)
            rows.append(row("skip_unchanged, first run", large, first, f"{first['requests']} requests"))
            second = run_target(sandbox, inputs[large], 32, work, store=store)
            rows.append(
                row("skip_unchanged, second run, nothing changed", large, second, f"{second['requests']} requests")
            )
            one_percent = changed_copy(inputs[large], 100, work / "one-percent.singer")
            third = run_target(sandbox, one_percent, 32, work, store=store, reset=False)
            rows.append(row("skip_unchanged, third run, 1% changed", large, third, f"{third['requests']} requests"))
            pairs = store_pairs(sandbox, inputs[small], work)
            server = postgres_server()
            try:
                if server is not None:
                    url = server.new_database()
                    first = run_target(sandbox, inputs[large], 32, work, store_url=url)
                    rows.append(row("skip_unchanged, first run, PostgreSQL store", large, first))
                    second = run_target(sandbox, inputs[large], 32, work, store_url=url)
                    rows.append(
                        row(
                            "skip_unchanged, second run, nothing changed, PostgreSQL store",
                            large,
                            second,
                            f"{second['requests']} requests",
                        )
                    )
                lookup_costs(sandbox, work, small, rows, server)
                preset_waits(sandbox, inputs[small], work, small, rows)
                tag_rows(sandbox, work, small, rows)
            finally:
                if server is not None:
                    server.stop()
        finally:
            sandbox.stop()

        print(f"== latency 100 ms: {slow_n} contacts", file=sys.stderr)
        sandbox = SandboxProcess(100)
        try:
            slow_input = prefix(inputs[small], slow_n, work / "slow.singer")
            window_rows(sandbox, slow_input, slow_n, work, rows)
            # The path of three requests per contact: singer-io 4.x, whose list_memberships tag contacts too.
            shared = work / "slow-singerio.singer"
            records = write_contacts(shared, "singerio", slow_n)
            config = target_config(
                sandbox, {"contacts": {"preset": "hubspot"}, "list_memberships": {"preset": "hubspot"}}, 32
            )
            result = run_config(sandbox, config, shared, work / "config-slow-singerio.json")
            rows.append(
                row(
                    "preset singer-io 4.x first run max_concurrency=32 @100ms",
                    records,
                    result,
                    f"{slow_n} contacts, {result['requests']} requests, {result['requests'] / result['wall']:.1f} "
                    f"requests/s, {slow_n / result['wall']:.1f} contacts/s",
                )
            )
            n_serial = slow_n if args.full_serial else serial_n
            serial_input = prefix(inputs[small], n_serial, work / "serial.singer")
            result = run_target(sandbox, serial_input, 1, work)
            rows.append(
                row(
                    "target max_concurrency=1 @100ms",
                    n_serial,
                    result,
                    "" if args.full_serial else f"first {n_serial} records of the same input",
                )
            )
        finally:
            sandbox.stop()

        if args.against:
            slow = prefix(inputs[small], slow_n, work / "slow.singer")
            compare(args.against, inputs[large], slow, inputs[small], work, rows)

        # Last: writing a 14 MB STATE grows this process, and a child's peak RSS (wait4) starts from its
        # parent's at fork, so every run after it would read at least that.
        print(f"== large STATE: {small} contacts, latency 0 ms", file=sys.stderr)
        sandbox = SandboxProcess(0)
        try:
            large_state_costs(sandbox, inputs[small], work, small, rows, pairs=1)
        finally:
            sandbox.stop()

    by = {r["run"] + f"/{r['records']}": r for r in rows}
    bare_rate = by[f"bare requests.Session loop/{small}"]["records_per_s"]
    fast0 = by[f"target max_concurrency=32/{small}"]["records_per_s"]
    rss_small = by[f"target max_concurrency=32/{small}"]["peak_rss_mb"]
    rss_large = by[f"target max_concurrency=32/{large}"]["peak_rss_mb"]
    fast100_row = by[f"target max_concurrency=32 @100ms/{slow_n}"]
    fast100 = fast100_row["records_per_s"]
    serial100 = next(r for r in rows if r["run"] == "target max_concurrency=1 @100ms")["records_per_s"]
    no_store = by[f"target max_concurrency=32/{large}"]
    with_store = by[f"skip_unchanged, first run/{large}"]
    unchanged = by[f"skip_unchanged, second run, nothing changed/{large}"]
    ratios = {
        "0ms: target(32) / bare loop": round(fast0 / bare_rate, 2),
        "100ms: target(32), the preset's MeltanoLabs first run, contacts/s": fast100,
        "100ms: target(32) requests/s / ideal 320 requests/s": round(
            int(fast100_row["note"].split()[0]) / fast100_row["seconds"] / 320, 2
        ),
        "100ms: ideal per contact at 1 request per contact (MeltanoLabs, singer-io 2.x/3.x)": "320 contacts/s",
        "100ms: target(32) / target(1)": round(fast100 / serial100, 1),
        f"peak RSS {large} / {small} records": round(rss_large / rss_small, 3),
        f"store: CPU per record, first run with / without skip_unchanged ({large})": round(
            with_store["cpu_ms_per_record"] / no_store["cpu_ms_per_record"], 3
        ),
        f"store: second run (nothing changed) time / first run time ({large})": round(
            unchanged["seconds"] / with_store["seconds"], 3
        ),
        f"store: third run (1% of the contacts changed) time / first run time ({large})": round(
            by[f"skip_unchanged, third run, 1% changed/{large}"]["seconds"] / with_store["seconds"], 3
        ),
        "store: requests sent by the second run": unchanged["note"],
        f"store: CPU with / without, {len(pairs)} alternating pairs of {small}-record runs (median)": round(
            sorted(pairs)[len(pairs) // 2], 3
        ),
        "store: the pairs' ratios": [round(r, 3) for r in pairs],
        "lookups: CPU per invoice, by lookup / email in the record": round(
            by[f"invoices, email by lookup (+ as many lookup rows)/{small}"]["cpu_ms_per_record"]
            / by[f"invoices, email in the record/{small}"]["cpu_ms_per_record"],
            3,
        ),
        "lookups: CPU per invoice, parked / sent": round(
            by[f"invoices parked (lookup finds nothing)/{small}"]["cpu_ms_per_record"]
            / by[f"invoices, email in the record/{small}"]["cpu_ms_per_record"],
            3,
        ),
        "preset: time, properties listed (contacts wait) / not listed": round(
            by[f"preset, properties listed (contacts wait for it)/{small}"]["seconds"]
            / by[f"preset, properties not listed/{small}"]["seconds"],
            3,
        ),
        **postgres_ratios(by, large, small),
        **large_state_ratios(rows),
        **TAG_SUMMARY,
        "max peak in flight seen by the sandbox (limit 32)": max(
            r["peak_in_flight"] or 0 for r in rows if "max_concurrency=32" in r["run"] or "skip_unchanged" in r["run"]
        ),
    }

    if args.against:
        for name in ("0ms", "100ms"):
            now = [r for r in rows if r["run"].startswith(f"compare {name} this")]
            then = [r for r in rows if r["run"].startswith(f"compare {name} {args.against}")]
            ratios[f"{name}: records/s this / {args.against} (pairs)"] = [
                round(a["records_per_s"] / b["records_per_s"], 3) for a, b in zip(now, then, strict=True)
            ]
            ratios[f"{name}: peak RSS this / {args.against} (pairs)"] = [
                round(a["peak_rss_mb"] / b["peak_rss_mb"], 3) for a, b in zip(now, then, strict=True)
            ]
        compared = {r["run"]: r for r in rows if r["run"].startswith("compare skip_unchanged")}
        for run_name in ("first run", "nothing changed", "1% changed"):
            a, b = (
                compared.get(f"compare skip_unchanged {run_name} this"),
                compared.get(f"compare skip_unchanged {run_name} {args.against}"),
            )
            if a and b:
                ratios[f"skip_unchanged {run_name}: CPU per record this / {args.against}"] = round(
                    a["cpu_ms_per_record"] / b["cpu_ms_per_record"], 3
                )
                ratios[f"skip_unchanged {run_name}: time this / {args.against}"] = round(a["seconds"] / b["seconds"], 3)

    print_table(rows, ratios)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
