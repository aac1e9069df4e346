"""The README's recipe, for real: its tap-hubspot and loader blocks as printed, then `meltano run` twice.

In a fresh Meltano 4 project holding this repository as ./target-segmetrics (as if cloned), the
README's extractor block (MeltanoLabs tap-hubspot `meltano-tap-hubspot==0.10.1`, installed by Meltano
into its own plugin venv, `associations` as `kind: object`, the `select` lines) and loader block run
with bash exactly as printed, then its run line twice. The one seam: after the extractor block has
installed the tap, the tap venv's `tap-hubspot` command is replaced by `tap-hubspot-canned`
(tests/fixtures/hubspot/canned_tap, installed into that venv), which runs the same
`TapHubspot.cli()` with the fixtures generator's fake HubSpot and frozen clock installed in the
tap's process, so its HTTP never leaves it. Run 1 reads the portal of `canned/`; run 2 the edited
portal of `canned/edited/`, from the STATE Meltano stored after run 1. The same data as
tests/presets/hubspot/test_hubspot_runs.py (which feeds the target the recorded tap output), so the
expectations are the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import API_KEY, FIXTURES, held, invoices, readme_block, rejected

from target_segmetrics.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
HUBSPOT = FIXTURES / "hubspot"
CANNED_TAP = HUBSPOT / "canned_tap"
STATE_ID = "dev:tap-hubspot-to-target-segmetrics"
# The values the README's loader block sets; the sandbox accepts exactly these.
ACCOUNT = "123abc"
INTEGRATION = "4"

pytestmark = pytest.mark.slow


def contacts_search(log: str) -> str:
    """The one contacts search the tap made, as the fake HubSpot logged it (with its request body)."""
    found = [line for line in log.splitlines() if "FAKE-HUBSPOT POST /crm/v3/objects/contacts/search" in line]
    assert len(found) == 1, found
    return found[0]


def put_canned_hubspot_into_the_tap(project: Path) -> None:
    """The seam: the installed tap's `tap-hubspot` command becomes `tap-hubspot-canned` (same tap, fake HubSpot)."""
    venv = project / ".meltano" / "extractors" / "tap-hubspot" / "venv"
    pip = subprocess.run(
        # Meltano's plugin venvs have no pip of their own: this interpreter's pip installs into it.
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "-e", str(CANNED_TAP)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    shutil.copyfile(venv / "bin" / "tap-hubspot-canned", venv / "bin" / "tap-hubspot")


def test_the_readme_recipe_runs_the_real_tap_hubspot_into_segmetrics_twice(meltano, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TARGET_SEGMETRICS_", "TAP_HUBSPOT"))},
        "PATH": f"{Path(meltano).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        # What the README says to export.
        "HUBSPOT_ACCESS_TOKEN": "FAKE-hubspot-private-app-token-0000",
        "SEGMETRICS_API_KEY": API_KEY,
        # Settings the test adds: the rejects file it reads, and (in run()) the sandbox's api_url.
        "TARGET_SEGMETRICS_REJECTS_PATH": str(tmp_path / "rejects.jsonl"),
    }
    project = tmp_path / "project"

    def meltano_cmd(*args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [meltano, *args],
            cwd=project,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"meltano {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done

    def bash(block: str, what: str, **extra_env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=project,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, f"the README's {what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done

    init = subprocess.run(
        [meltano, "init", "project", "--no_usage_stats"], cwd=tmp_path, env=env, capture_output=True, check=False
    )
    assert init.returncode == 0, init.stderr[-3000:]
    (project / "target-segmetrics").symlink_to(ROOT, target_is_directory=True)  # the clone, as the README has it

    started = time.monotonic()
    bash(readme_block("meltano-extractor"), "extractor block")
    put_canned_hubspot_into_the_tap(project)
    bash(readme_block("meltano-quickstart"), "loader block")
    installed = time.monotonic()
    tap = json.loads(meltano_cmd("config", "print", "tap-hubspot").stdout)
    assert tap["associations"] == {"deal": ["contact", "line_item"]}  # an object, as the tap needs it
    # The secrets went to .env, not to meltano.yml.
    assert "FAKE-hubspot" not in (project / "meltano.yml").read_text()
    assert API_KEY not in (project / "meltano.yml").read_text()

    with Sandbox(api_key=API_KEY, account_id=ACCOUNT, integration_ids=(INTEGRATION,)) as sandbox:
        run_line = readme_block("meltano-run")

        def run(canned: Path, now: str, summary: Path) -> subprocess.CompletedProcess:
            return bash(
                run_line,
                "run line",
                FAKE_HUBSPOT_CANNED=str(canned),
                FAKE_HUBSPOT_NOW=now,
                TARGET_SEGMETRICS_API_URL=sandbox.base_url,
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
