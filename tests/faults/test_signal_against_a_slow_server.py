"""Ctrl-C (SIGINT) or SIGTERM while SegMetrics is slow to answer: the run stops within 3 s, and a second
signal makes it stop at once. What was running is abandoned (never acknowledged, so no STATE claims it)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from helpers import base_config, record, schema, start_process

USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})
MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}

pytestmark = [pytest.mark.slow, pytest.mark.timing]


def slow_run(sandbox, tmp_path):
    """A run whose requests each take 20 s to be answered (request_timeout 30 s), with requests in flight."""
    sandbox.set_latency(20_000)
    config_path = tmp_path / "config.json"
    config = base_config(sandbox, mappings=MAPPING, max_concurrency=4, request_timeout=30)
    config_path.write_text(json.dumps(config))
    messages = [USERS, *[record("users", {"id": i, "email": f"u{i}@example.com"}) for i in range(50)]]
    proc = start_process(config_path, messages)
    deadline = time.monotonic() + 60
    while sandbox.in_flight == 0:  # the target is waiting on SegMetrics
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


def ended(proc) -> tuple[str, str]:
    """Wait for the process to exit; what it printed (stdin is the feeder's, already closed)."""
    proc.wait(timeout=60)
    return proc.stdout.read(), proc.stderr.read()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_against_a_slow_server_stops_within_three_seconds(sandbox, tmp_path, signum):
    proc = slow_run(sandbox, tmp_path)
    sent = time.monotonic()
    os.kill(proc.pid, signum)
    out, err = ended(proc)
    took = time.monotonic() - sent
    assert took < 3.0, (took, err[-2000:])
    assert proc.returncode == 128 + signum
    assert f"Stopped by {signal.Signals(signum).name}" in err
    assert "were abandoned: never acknowledged, so no STATE claims them" in err
    assert "Traceback" not in err
    assert out == ""  # nothing landed: no STATE


def test_a_second_signal_stops_at_once(sandbox, tmp_path):
    proc = slow_run(sandbox, tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    second = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    _out, err = ended(proc)
    took = time.monotonic() - second
    # The first signal alone waits 2 s for running requests; the second one ends that wait.
    assert took < 1.0, (took, err[-2000:])
    assert proc.returncode == 128 + signal.SIGINT
    assert err.count("Stopped by SIGINT") == 1
    assert "requests still running at a second signal were abandoned" in err
    assert "Traceback" not in err
