"""The headline, for real: `meltano run tap-hubspot target-segmetrics`, twice, in a fresh Meltano 4 project.

The extractor is the real MeltanoLabs tap-hubspot (`meltano-tap-hubspot==0.10.1`, installed by Meltano
into its own plugin venv), run through `tap-hubspot-canned` (tests/fixtures/hubspot/canned_tap): the
fixtures generator's fake HubSpot and frozen clock, installed in the tap's process, so its HTTP never
leaves it. The loader is added as the README's Meltano steps add it, with the README's `hubspot`
preset config. Run 1 reads the portal of `canned/`; run 2 the edited portal of `canned/edited/`, from
the STATE Meltano stored after run 1. The same data as tests/presets/hubspot/test_hubspot_runs.py (which feeds the
target the recorded tap output), so the expectations are the same.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from helpers import ACCOUNT, API_KEY, FIXTURES, INTEGRATION, held, invoices, readme_hubspot_mappings, rejected

ROOT = Path(__file__).resolve().parents[2]
HUBSPOT = FIXTURES / "hubspot"
CANNED_TAP = HUBSPOT / "canned_tap"
STATE_ID = "dev:tap-hubspot-to-target-segmetrics"

MAPPINGS = readme_hubspot_mappings()  # the README's "one config to write" of the `hubspot` preset
# What the MeltanoLabs tap emits of those (with `associations: {"deal": ["contact", "line_item"]}`), plus
# deal_pipelines (the preset's pipeline lookup).
SELECTED = (
    "contacts",
    "deals",
    "line_items",
    "products",
    "owners",
    "deal_pipelines",
    "properties",
    "deal_contact_associations",
    "deal_line_item_associations",
)

pytestmark = pytest.mark.slow


def extractor_definition() -> str:
    pip_url = f"meltano-tap-hubspot==0.10.1 -e {shlex.quote(str(CANNED_TAP))}"
    return json.dumps(  # JSON is YAML
        {
            "name": "tap-hubspot",
            "namespace": "tap_hubspot",
            "pip_url": pip_url,
            "executable": "tap-hubspot-canned",
            "capabilities": ["catalog", "discover", "state", "about"],
            "settings": [
                {"name": "access_token", "kind": "string", "sensitive": True},
                {"name": "start_date", "kind": "date_iso8601"},
                {"name": "associations", "kind": "object"},
            ],
        },
        indent=2,
    )


def contacts_search(log: str) -> str:
    """The one contacts search the tap made, as the fake HubSpot logged it (with its request body)."""
    found = [line for line in log.splitlines() if "FAKE-HUBSPOT POST /crm/v3/objects/contacts/search" in line]
    assert len(found) == 1, found
    return found[0]


def test_meltano_runs_the_real_tap_hubspot_into_segmetrics_twice(meltano, sandbox, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TARGET_SEGMETRICS_", "TAP_HUBSPOT"))},
        "PATH": f"{Path(meltano).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TARGET_SEGMETRICS_API_KEY": API_KEY,
        "TARGET_SEGMETRICS_API_URL": sandbox.base_url,
        "TARGET_SEGMETRICS_REJECTS_PATH": str(tmp_path / "rejects.jsonl"),
    }
    project = tmp_path / "project"

    def meltano_cmd(*args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [meltano, *args],
            cwd=project if project.exists() else tmp_path,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"meltano {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done

    meltano_cmd("init", "project", "--no_usage_stats")
    (project / "target-segmetrics").symlink_to(ROOT, target_is_directory=True)  # the clone, as the README has it
    tap = tmp_path / "tap-hubspot.yml"
    tap.write_text(extractor_definition())
    meltano_cmd("add", "--no-install", "--plugin-type", "extractor", "tap-hubspot", "--from-ref", str(tap))
    meltano_cmd(
        "add",
        "--no-install",
        "--plugin-type",
        "loader",
        "target-segmetrics",
        "--from-ref",
        "target-segmetrics/meltano-hub/target-segmetrics.yml",
    )
    meltano_cmd("config", "set", "tap-hubspot", "access_token", "FAKE-hubspot-private-app-token-0000")
    meltano_cmd("config", "set", "tap-hubspot", "start_date", "2023-01-01T00:00:00Z")
    meltano_cmd("config", "set", "tap-hubspot", "associations", json.dumps({"deal": ["contact", "line_item"]}))
    meltano_cmd("config", "set", "tap-hubspot", "_select", json.dumps([f"{stream}.*" for stream in SELECTED]))
    meltano_cmd("config", "set", "target-segmetrics", "account_id", ACCOUNT)
    meltano_cmd("config", "set", "target-segmetrics", "integration_id", INTEGRATION)
    meltano_cmd("config", "set", "target-segmetrics", "mappings", json.dumps(MAPPINGS))

    started = time.monotonic()
    meltano_cmd("install", timeout=900)
    installed = time.monotonic()

    def run(canned: Path, now: str, summary: Path) -> subprocess.CompletedProcess:
        return meltano_cmd(
            "run",
            "tap-hubspot",
            "target-segmetrics",
            timeout=600,
            FAKE_HUBSPOT_CANNED=str(canned),
            FAKE_HUBSPOT_NOW=now,
            TARGET_SEGMETRICS_SUMMARY_PATH=str(summary),
        )

    # --- run 1: the portal as it was on 2024-06-01, no state -------------------------------------------
    first = run(HUBSPOT / "canned", "2024-06-01T00:00:00Z", tmp_path / "summary1.json")
    ran_first = time.monotonic()
    received = json.loads((tmp_path / "summary1.json").read_text())["streams"]
    assert received["contacts"]["received"] == 6
    # The tap's own HTTP, answered in its process: the contacts search from start_date (2023-01-01).
    assert '"operator": "GTE", "value": "1672531200000"' in contacts_search(first.stderr)

    contacts = held(sandbox)
    assert sorted(contacts) == ["74251", "74252", "74253", "74254", "74255", "74256"]
    alice = contacts["74251"]
    assert alice["email"] == "alice.johnson@example.com"
    assert alice["tags"] == ["Lead status: Connected", "Lifecycle: Customer", "Source: Paid Social"]
    # UTM from the query of the first page she saw (the portal has no utm_* properties yet).
    assert (alice["utm_source"], alice["utm_medium"], alice["utm_campaign"]) == (
        "facebook",
        "paid_social",
        "spring_promo",
    )
    assert contacts["74255"]["status"] == "inactive"  # hs_email_optout true
    assert contacts["74253"]["tags"] == ["Lead status: New", "Lifecycle: Lead", "Source: Referrals"]
    # Revenue: the won USD deal on its contact, with its line item's product; the GBP deal is refused.
    assert invoices(sandbox) == {
        "7001": {"contact_id": "74251", "amount": 150000, "items": [("Annual plan", "3101", 150000)]}
    }
    assert any("the deal is in 'GBP', not in USD" in why for why in rejected(tmp_path / "rejects.jsonl").values())

    # Meltano stored the tap's bookmarks, passed on by the target once SegMetrics acknowledged the records.
    state = json.loads(meltano_cmd("state", "get", STATE_ID).stdout)
    assert state["singer_state"]["bookmarks"]["contacts"]["replication_key_value"] == "2024-03-10T07:07:07.070Z"

    # --- run 2: the edited portal on 2024-06-08, from run 1's state ------------------------------------
    second = run(HUBSPOT / "canned" / "edited", "2024-06-08T00:00:00Z", tmp_path / "summary2.json")
    ran_second = time.monotonic()
    # Only what changed since the bookmark came: 3 edited contacts and the new one (without the
    # state, the search from start_date would have returned all 7).
    assert json.loads((tmp_path / "summary2.json").read_text())["streams"]["contacts"]["received"] == 4
    # The tap searched from run 1's bookmark (2024-03-10T07:07:07.070Z), the state Meltano handed it.
    assert '"operator": "GTE", "value": "1710054427070"' in contacts_search(second.stderr)

    contacts = held(sandbox)
    assert sorted(contacts) == ["74251", "74252", "74253", "74254", "74255", "74256", "74257"]
    li = contacts["74253"]["tags"]
    assert "Lifecycle: Product trial" in li  # the portal's custom stage, labelled from the `properties` stream
    assert "Lifecycle: Lead" not in li and "Lead status: New" not in li
    assert "Lead status: Open" in li
    assert contacts["74252"]["status"] == "inactive"  # opted out of all email
    nina = contacts["74257"]
    assert (nina["email"], nina["utm_source"], nina["utm_medium"], nina["utm_campaign"]) == (
        "nina.patel@example.org",
        "google",
        "cpc",
        "summer_sale",
    )
    assert "Source: Paid Search" in nina["tags"]
    found = invoices(sandbox)
    assert found["7005"] == {"contact_id": "74257", "amount": 99800, "items": [("Starter", "3102", 99800)]}
    assert found["7001"]["amount"] == 150000 and "7003" not in found  # 7003 was won in EUR: refused
    assert any("the deal is in 'EUR', not in USD" in why for why in rejected(tmp_path / "rejects.jsonl").values())

    state = json.loads(meltano_cmd("state", "get", STATE_ID).stdout)
    assert state["singer_state"]["bookmarks"]["contacts"]["replication_key_value"] == "2024-06-05T18:30:45.678Z"
    assert API_KEY not in first.stdout + first.stderr + second.stdout + second.stderr
    print(
        f"meltano install {installed - started:.0f}s, run 1 {ran_first - installed:.0f}s, "
        f"run 2 {ran_second - ran_first:.0f}s"
    )
