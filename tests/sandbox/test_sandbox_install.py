"""`segmetrics-sandbox` installed without its `sandbox` extra (no aiohttp): one line saying how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imported at interpreter start-up (PYTHONPATH): makes aiohttp unimportable, as if not installed.
BLOCK_AIOHTTP = """
import sys


class _NoAiohttp:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp" or name.startswith("aiohttp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoAiohttp())
"""


@pytest.fixture
def without_aiohttp(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCK_AIOHTTP)
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


@pytest.mark.parametrize(
    "command",
    [
        [str(Path(sys.executable).parent / "segmetrics-sandbox"), "--port", "0"],
        [sys.executable, "-m", "target_segmetrics.sandbox", "--port", "0"],
    ],
    ids=["console-script", "python-m"],
)
def test_sandbox_without_aiohttp_says_how_to_install_it(without_aiohttp, command):
    probe = subprocess.run(
        [sys.executable, "-c", "import aiohttp"], env=without_aiohttp, capture_output=True, text=True, check=False
    )
    assert probe.returncode == 1 and "No module named 'aiohttp'" in probe.stderr  # the block works

    run = subprocess.run(command, env=without_aiohttp, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        "segmetrics-sandbox: the sandbox needs aiohttp, which is not installed: "
        "pip install 'target-segmetrics[sandbox]'"
    ]


def test_show_works_without_aiohttp(without_aiohttp):
    """Reading a running sandbox needs only the standard library."""
    run = subprocess.run(
        [sys.executable, "-m", "target_segmetrics.sandbox.show", "--url", "http://127.0.0.1:9"],
        env=without_aiohttp,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("segmetrics-sandbox show: cannot read http://127.0.0.1:9")
    assert "Traceback" not in run.stderr
