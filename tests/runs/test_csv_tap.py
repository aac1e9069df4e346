"""Dates in a known format and money as people write it, over a real CSV tap's output (tap-spreadsheets,
installed by scripts/test.sh into .venv-tap-spreadsheets) reading files the test writes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, base_config


@pytest.fixture(scope="module")
def tap_spreadsheets() -> str:
    exe = os.environ.get("TAP_SPREADSHEETS_BIN") or str(ROOT / ".venv-tap-spreadsheets" / "bin" / "tap-spreadsheets")
    if not Path(exe).exists():
        if os.environ.get("REQUIRE_TAPS"):
            pytest.fail(f"tap-spreadsheets is required (REQUIRE_TAPS is set) but {exe} does not exist")
        pytest.skip("tap-spreadsheets is not installed (scripts/test.sh installs it into .venv-tap-spreadsheets)")
    return exe


def tap_output(exe: str, tmp_path: Path, files: dict[str, str]) -> Path:
    """The tap's Singer output over CSV files ``{stream: text}``, each keyed by its ``order`` column."""
    entries = []
    for stream, text in files.items():
        path = tmp_path / f"{stream}.csv"
        path.write_text(text, encoding="utf-8")
        entries.append({"path": str(path), "format": "csv", "table_name": stream, "primary_keys": ["order"]})
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({"files": entries}))
    out = tmp_path / "tap.singer"
    with out.open("w") as stdout:
        subprocess.run(
            [exe, "--config", str(config)], stdout=stdout, stderr=subprocess.DEVNULL, check=True, timeout=120
        )
    return out


def orders(date_format: str, **options) -> dict:
    """An invoice per CSV row: its total as written, its date in ``date_format``."""
    total = {"path": "total", "transform": "cents"}
    return {
        "object": "invoice",
        **options,
        "fields": {
            "id": "order",
            "email": "email",
            "amount": total,
            "paid": total,
            "date_created": {"path": "ordered", "transform": f"date:{date_format}"},
        },
        "items": {"fields": {"name": {"value": "Order"}, "product_id": {"value": "shop"}, "amount": total}},
    }


def test_dates_and_money_as_people_write_them_over_a_csv_tap(sandbox, run_target, tmp_path, tap_spreadsheets):
    singer = tap_output(
        tap_spreadsheets,
        tmp_path,
        {
            "orders_us": 'order,email,total,ordered\nus1,a@example.com,"$1,299.00",03/05/2024\n'
            "us2,b@example.com,USD 12.00,12/31/2023\n",
            "orders_eu": 'order,email,total,ordered\neu1,c@example.com,"1.299,00 €",5 March 2024\n'
            'eu2,d@example.com,"12,50 €",1 December 2023\neu3,e@example.com,"1.299 €",2 December 2023\n',
            "orders_jp": 'order,email,total,ordered\njp1,f@example.com,"¥1,500",2024-03-05\n'
            "jp2,g@example.com,1500,2024-03-06\njp3,h@example.com,USD 10.00,2024-03-07\n",
        },
    )
    rejects = tmp_path / "rejects.jsonl"
    mappings = {
        "orders_us": orders("%m/%d/%Y"),
        "orders_eu": orders("%d %B %Y", currency="EUR"),
        "orders_jp": orders("%Y-%m-%d", currency="JPY"),  # yen have no minor unit: sent as they are
    }
    run = run_target(base_config(sandbox, mappings=mappings, rejects_path=str(rejects)), singer)
    assert run.returncode == 0, run.stderr
    held = {str(i["id"]): (i["amount"], i["date_created"][:10]) for i in sandbox.invoices()}
    assert held == {
        "us1": (129900, "2024-03-05"),
        "us2": (1200, "2023-12-31"),
        "eu1": (129900, "2024-03-05"),
        "eu2": (1250, "2023-12-01"),
        "jp1": (1500, "2024-03-05"),
        "jp2": (1500, "2024-03-06"),
    }
    reasons = {entry["key"]: entry["reasons"] for entry in map(json.loads, rejects.read_text().splitlines())}
    assert reasons == {
        "order=eu3": [
            "amount, paid, items[0].amount: '1.299 €' is not an amount: the separator in '1.299' may be a decimal "
            "point or thousands (write 1299.00 or 1.299,00)"
        ],
        "order=jp3": [
            "amount, paid, items[0].amount: 'USD 10.00' is in USD, not in JPY (the entry's currency): not converted"
        ],
    }
