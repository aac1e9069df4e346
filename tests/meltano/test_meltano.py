"""One real `meltano run`: the loader as meltano.yml defines it, fed by a replayed tap-hubspot run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import ACCOUNT, API_KEY, INTEGRATION

ROOT = Path(__file__).resolve().parents[2]


def meltano_command(meltano: str, env: dict, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [meltano, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_meltano_run_loads_the_hubspot_contacts(meltano, sandbox, tmp_path):
    env = {
        **os.environ,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TARGET_SEGMETRICS_API_KEY": API_KEY,
        "TARGET_SEGMETRICS_ACCOUNT_ID": ACCOUNT,
        "TARGET_SEGMETRICS_INTEGRATION_ID": INTEGRATION,
        "TARGET_SEGMETRICS_API_URL": sandbox.base_url,
        "TARGET_SEGMETRICS_MAPPINGS": '{"contacts": {"preset": "hubspot"}}',
    }
    install = meltano_command(meltano, env, "install", "--plugin-type", "loader", timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    run = meltano_command(meltano, env, "run", "tap-replay", "target-segmetrics", timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    emails = sorted(c["email"] or "" for c in sandbox.contacts())
    assert emails == [
        "",
        "alice.johnson@example.com",
        "j.doe+newsletter@example.com",
        "li.wei@example.cn",
        "sam@taylor-consulting.co.uk",
        "zoe.muller@example.de",
    ]
    # Meltano stored the STATE the target passed on after SegMetrics acknowledged everything.
    state = meltano_command(meltano, env, "state", "get", "dev:tap-replay-to-target-segmetrics", timeout=300)
    assert state.returncode == 0, state.stderr[-2000:]
    assert "2024-03-10T07:07:07.070Z" in state.stdout  # the last bookmark of the replayed run
    assert API_KEY not in run.stdout + run.stderr
