"""Shared fixtures: a running sandbox, and a runner for the installed ``target-segmetrics`` CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from target_segmetrics.sandbox import Sandbox

DATA = Path(__file__).parent / "data"
FIXTURES = Path(__file__).parent / "fixtures"
API_KEY = "sk-test-4f1c9a7be2d3"  # a distinctive key, so tests can prove it never leaks
ACCOUNT = "acct1"
INTEGRATION = "int1"


@pytest.fixture
def sandbox():
    with Sandbox(api_key=API_KEY, account_id=ACCOUNT, integration_ids=(INTEGRATION, "int2")) as server:
        yield server


def target_executable() -> str:
    """The installed console script (next to this interpreter), as a user would run it."""
    candidate = Path(sys.executable).parent / "target-segmetrics"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("target-segmetrics")
    if not found:
        pytest.fail("target-segmetrics is not installed: run `pip install -e .[dev]` first")
    return found


@dataclass
class Run:
    """What one run of the target printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[dict]:
        """The STATE values printed on stdout, in order."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "| WARNING" in line]

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "| ERROR" in line or "| CRITICAL" in line]

    def everything(self) -> str:
        return self.stdout + self.stderr


def base_config(sandbox: Sandbox, **overrides) -> dict:
    config = {
        "api_key": API_KEY,
        "account_id": ACCOUNT,
        "integration_id": INTEGRATION,
        "api_url": sandbox.base_url,
        "max_retries": 2,
        "request_timeout": 5,
    }
    config.update(overrides)
    return config


@pytest.fixture
def run_target(tmp_path):
    """Run the installed CLI with a config over Singer input (a file path or a list of messages)."""

    def run(config: dict, messages, *, timeout: float = 120) -> Run:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        if isinstance(messages, (str, Path)):
            text = Path(messages).read_text()
        else:
            text = "".join(json.dumps(message) + "\n" for message in messages)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(
            [target_executable(), "--config", str(config_path)],
            input=text,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


def schema(stream: str, properties: dict, key_properties=("id",)) -> dict:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": list(key_properties),
    }


def record(stream: str, data: dict) -> dict:
    return {"type": "RECORD", "stream": stream, "record": data}


def state(value: dict) -> dict:
    return {"type": "STATE", "value": value}
