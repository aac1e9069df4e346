"""A max_concurrency above what the open-file limit allows starts only what the client can use."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from helpers import USERS, base_config, target_executable, users

from target_segmetrics.http.failures import FILES_PER_REQUEST, FILES_RESERVED

MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}
LIMIT = 256
OTHER_THREADS = 16
"""Threads a run has besides its senders (main, STATE ticker, deadline watchdog, ...), with margin."""


def threads_of(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))


def test_a_max_concurrency_above_the_file_limit_starts_only_the_senders_it_can_use(sandbox, tmp_path):
    sandbox.set_latency(300)  # requests stay in flight: every sender the run would start is started
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config(sandbox, mappings=MAPPING, max_concurrency=10000)))

    tap = tmp_path / "tap.singer"
    tap.write_text("".join(json.dumps(m) + "\n" for m in [USERS, *users(0, 800, state_every=100)]))
    with tap.open() as stdin, (tmp_path / "out").open("w") as stdout, (tmp_path / "err").open("w") as stderr:
        proc = subprocess.Popen(
            ["/bin/bash", "-c", f'ulimit -n {LIMIT} && exec "$0" --config "$1"', target_executable(), str(config_path)],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        peak = 0
        started = time.monotonic()
        while proc.poll() is None and time.monotonic() - started < 120:
            peak = max(peak, threads_of(proc.pid))
            time.sleep(0.05)
        proc.wait(timeout=10)
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()

    assert proc.returncode == 0, err[-3000:]
    assert len(sandbox.contacts()) == 800
    assert json.loads(out.splitlines()[-1]) == {"done": 800}
    usable = (LIMIT - FILES_RESERVED) // FILES_PER_REQUEST
    assert sandbox.peak_in_flight <= usable
    assert 0 < peak <= usable + OTHER_THREADS, f"{peak} threads for {usable} usable connections"
