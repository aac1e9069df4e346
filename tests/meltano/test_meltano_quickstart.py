"""The README's loader steps and run line, exactly as printed, in a fresh Meltano project, with any tap.

The blocks after README.md's ``<!-- meltano-quickstart -->`` and ``<!-- meltano-run -->`` markers are
run with bash in a new
project (``meltano init``) that holds this repository as ``./target-segmetrics`` (as if cloned into
it) and an extractor named ``tap-hubspot`` that replays a recorded tap-hubspot run. The only thing
the test adds around the block: the API key in ``SEGMETRICS_API_KEY`` (as the README says to
export it) and ``TARGET_SEGMETRICS_API_URL`` pointing the loader at the local sandbox.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import API_KEY, FIXTURES, readme_block

from target_segmetrics.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
# The values the README's block sets; the sandbox accepts exactly these.
ACCOUNT = "123abc"
INTEGRATION = "4"

pytestmark = pytest.mark.slow


def test_the_readme_meltano_steps_load_a_tap_into_segmetrics(meltano, tmp_path):
    block = readme_block("meltano-quickstart") + readme_block("meltano-run")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TARGET_SEGMETRICS_"))},
        "PATH": f"{Path(meltano).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "SEGMETRICS_API_KEY": API_KEY,
    }

    def meltano_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [meltano, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"meltano {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done

    meltano_cmd("init", "project", "--no_usage_stats", cwd=tmp_path)
    project = tmp_path / "project"
    (project / "target-segmetrics").symlink_to(ROOT, target_is_directory=True)  # the clone
    # A stand-in for tap-hubspot: replays a recorded MeltanoLabs tap-hubspot run.
    tap = tmp_path / "tap-hubspot.yml"
    tap.write_text(
        "name: tap-hubspot\nnamespace: tap_hubspot\n"
        f"executable: {ROOT / 'tests' / 'meltano' / 'tap-replay'}\n"
        "settings:\n- name: path\n  kind: string\n"
    )
    meltano_cmd("add", "--plugin-type", "extractor", "tap-hubspot", "--from-ref", str(tap), cwd=project)
    meltano_cmd(
        "config", "set", "tap-hubspot", "path", str(FIXTURES / "hubspot" / "meltanolabs_contacts.singer"), cwd=project
    )

    with Sandbox(api_key=API_KEY, account_id=ACCOUNT, integration_ids=(INTEGRATION,)) as sandbox:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=project,
            env={**env, "TARGET_SEGMETRICS_API_URL": sandbox.base_url},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert run.returncode == 0, f"the README's block failed:\n{run.stdout[-3000:]}\n{run.stderr[-4000:]}"
        contacts = sandbox.contacts(INTEGRATION)

    assert sorted(c["email"] or "" for c in contacts) == [
        "",
        "alice.johnson@example.com",
        "j.doe+newsletter@example.com",
        "li.wei@example.cn",
        "sam@taylor-consulting.co.uk",
        "zoe.muller@example.de",
    ]
    alice = next(c for c in contacts if c["email"] == "alice.johnson@example.com")
    # The hubspot preset was applied: `mappings` reached the target as an object, not as text.
    assert any(tag["name"].startswith("Lifecycle: ") for tag in alice["tags"]), alice
    # The key is kept out of meltano.yml (Meltano writes a sensitive setting to .env) and out of the output.
    assert API_KEY not in (project / "meltano.yml").read_text()
    assert API_KEY in (project / ".env").read_text()
    assert API_KEY not in run.stdout + run.stderr
