"""Never lose a record: faults, restarts, signals, hostile answers, and the key kept secret."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import threading
import time

import pytest
from helpers import (
    API_KEY,
    PLANS,
    USERS,
    base_config,
    planned_user,
    read_states_until,
    record,
    run_process,
    scripted,
    singer_text,
    start_process,
    target_executable,
    user_email,
    users,
)

from target_segmetrics.sandbox import Faults

MAPPING = {
    "users": {
        "fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email", "first_name": "first_name"},
        "tags": [{"path": "plan", "format": "Plan: {}"}],
        "custom_fields": {"Plan": "plan"},
    }
}


def planned_users(start: int, stop: int, every: int = 100) -> list[dict]:
    """Users start..stop-1 with a first name and a plan, a STATE {"done": n} after every ``every``."""
    return users(start, stop, state_every=every, make=planned_user)


def assert_held_exactly(sandbox, count: int) -> None:
    contacts = {c["contact_id"]: c for c in sandbox.contacts()}
    assert len(contacts) == count
    for i in range(count):
        contact = contacts[str(i)]
        assert contact["email"] == user_email(i)
        assert contact["first_name"] == f"First{i}"
        plan = PLANS[i % 3]
        assert [t["name"] for t in contact["tags"]] == [f"Plan: {plan}"]
        assert contact["custom_fields"] == {"Plan": plan}


@pytest.mark.slow
def test_a_storm_of_faults_loses_nothing(sandbox, run_target):
    total = 2000
    faults = Faults(
        error_rate=0.06,
        throttle_rate=0.06,
        retry_after=0.05,
        drop_rate=0.03,
        lost_reply_rate=0.03,
        slow_rate=0.01,
        slow_ms=1500,
        seed=11,
    )
    sandbox.faults = faults
    config = base_config(sandbox, mappings=MAPPING, max_retries=10, request_timeout=1, max_concurrency=16)
    run = run_target(config, [USERS, *planned_users(0, total)], timeout=300)

    assert run.returncode == 0, run.stderr[-3000:]
    assert_held_exactly(sandbox, total)
    assert run.states[-1] == {"done": total}
    injected = sum(faults.counts.values())
    assert injected > 0.15 * total  # the storm really happened
    assert {"503", "429", "drop", "lost", "slow"} <= set(faults.counts)
    print(
        f"faults injected: {dict(faults.counts)} ({injected}); records sent {total}; "
        f"held {len(sandbox.contacts())}; lost 0"
    )


# In a separate process: the fatal error comes while 8 requests are retrying, and the target may
# abandon them (os._exit), which an in-process run cannot survive.
def test_api_down_mid_run_stops_and_no_state_claims_what_did_not_land(sandbox, run_target_process):
    sandbox.faults = scripted(*(["ok"] * 250), *([503] * 5000))
    config = base_config(sandbox, mappings=MAPPING, max_retries=2, max_concurrency=8)
    run = run_target_process(config, [USERS, *planned_users(0, 1000, every=50)], timeout=120)

    assert run.returncode == 1
    assert len(run.errors) == 1 and "did not accept POST contact after 3 tries" in run.errors[0]
    assert "Traceback" not in run.stderr
    held = {int(c["contact_id"]) for c in sandbox.contacts()}
    assert 0 < len(held) < 1000
    # The first 250 requests were answered: every record before the 242nd landed (at most 8 are in
    # flight at once), so the STATE after 200 went out; and no STATE claims a record not held.
    assert run.states and run.states[-1]["done"] >= 200, run.stderr[-2000:]
    for printed in run.states:
        assert set(range(printed["done"])) <= held


@pytest.mark.slow
def test_sigkill_then_restart_from_the_last_state_holds_everything(sandbox, tmp_path):
    total = 1500
    sandbox.set_latency(5)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config(sandbox, mappings=MAPPING, max_concurrency=8, batch_size_rows=100)))

    proc = start_process(config_path, [USERS, *planned_users(0, total)])
    states = read_states_until(proc, 500)
    proc.kill()  # SIGKILL: no cleanup at all
    proc.wait(timeout=10)
    last = states[-1]["done"]
    assert 500 <= last < total

    # The tap replays from that STATE: every record after the bookmark, again.
    replay = singer_text([USERS, *planned_users(last, total)])
    rerun = run_process(config_path, replay, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout.splitlines()[-1]) == {"done": total}
    assert_held_exactly(sandbox, total)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cleanly_with_state_only_for_what_landed(sandbox, tmp_path, signum):
    sandbox.set_latency(20)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config(sandbox, mappings=MAPPING, max_concurrency=8, batch_size_rows=50)))
    proc = start_process(config_path, [USERS, *planned_users(0, 5000, every=50)])
    states = read_states_until(proc, 200)
    assert states and states[-1]["done"] >= 200
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    states += [json.loads(line) for line in out.splitlines()]

    assert proc.returncode == 128 + signum
    assert f"Stopped by {signal.Signals(signum).name}" in err
    assert "Traceback" not in err
    held = {int(c["contact_id"]) for c in sandbox.contacts()}
    assert len(held) < 5000
    for printed in states:
        assert set(range(printed["done"])) <= held
    time.sleep(0.3)
    settled = sandbox.request_count
    time.sleep(0.5)
    assert sandbox.request_count == settled  # nothing is still sending after exit


@pytest.mark.slow
def test_a_signal_delivered_twice_stops_once(sandbox, tmp_path):
    """Meltano forwards SIGTERM to the target, which the OS may also deliver to the whole group."""
    sandbox.set_latency(20)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config(sandbox, mappings=MAPPING, max_concurrency=8, batch_size_rows=50)))
    proc = start_process(config_path, [USERS, *planned_users(0, 5000, every=50)])
    states = read_states_until(proc, 200)
    for _ in range(5):
        os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    states += [json.loads(line) for line in out.splitlines()]

    assert proc.returncode == 128 + signal.SIGTERM
    assert err.count("Stopped by SIGTERM") == 1
    assert "Traceback" not in err
    held = {int(c["contact_id"]) for c in sandbox.contacts()}
    assert states
    assert set(range(states[-1]["done"])) <= held


# --- hostile or broken answers ------------------------------------------------------------------------


class _Hostile(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            200,
            b"<html><body>Welcome to the hotel wifi</body></html>",
            "an answer that is not JSON ('<html><body>Welcome",
        ),
        (200, b"{" * 200_000, "an answer larger than 65536 bytes"),
        (502, b"<html>Bad gateway</html>", "HTTP 502"),
        (400, b"not json at all", "an answer that is not JSON ('not json at all')"),
        (301, b"", "answered POST contact with HTTP 301"),
        (405, b"", "answered POST contact with HTTP 405"),
    ],
)
def test_a_hostile_answer_gives_a_clean_error(run_target, status, body, message):
    handler = type("Handler", (_Hostile,), {"body": body, "status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = {
            "api_key": API_KEY,
            "account_id": "a",
            "integration_id": "i",
            "max_retries": 1,
            "api_url": f"http://127.0.0.1:{server.server_address[1]}/api/v1",
        }
        run = run_target(config, [USERS, *planned_users(0, 3)])
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in run.stderr
    assert message in run.stderr
    # Not SegMetrics' answer (a 400 page included: a proxy's or a firewall's): no verdict on a record.
    assert run.returncode == 1
    assert run.states == []
    assert "Rejected record" not in run.stderr


# --- the key stays secret --------------------------------------------------------------------------------


# In a separate process: the log level comes from the environment, and --about is the console script.
@pytest.mark.slow
def test_the_key_never_appears_even_at_debug_level(sandbox, run_target_process, tmp_path, monkeypatch):
    monkeypatch.setenv("TARGET_SEGMETRICS_LOGLEVEL", "debug")
    rejects = tmp_path / "rejects.jsonl"
    sandbox.faults = scripted(503, 429, "drop")
    bad = record("users", {"id": 99, "email": "not an email", "first_name": "X", "plan": "free"})
    config = base_config(sandbox, mappings=MAPPING, rejects_path=str(rejects))
    run = run_target_process(config, [USERS, *planned_users(0, 20), bad])
    assert run.returncode == 0, run.stderr[-2000:]
    assert "DEBUG" in run.stderr  # debug logging was really on
    assert API_KEY not in run.everything()
    assert API_KEY not in rejects.read_text()

    wrong = run_target_process(base_config(sandbox, api_key=API_KEY + "x"), [USERS, *planned_users(0, 3)])
    assert wrong.returncode == 1
    assert API_KEY not in wrong.everything()

    about = subprocess.run(
        [target_executable(), "--about", "--format=json", "--config", str(tmp_path / "config.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert API_KEY not in about.stdout + about.stderr


def test_plain_http_is_refused_for_a_remote_host_but_allowed_for_loopback(sandbox, run_target):
    remote = run_target(base_config(sandbox, api_url="http://10.0.0.7/api/v1"), [USERS])
    assert remote.returncode == 1
    assert "uses plain http:// to a host that is not this machine" in remote.stderr
    local = run_target(
        base_config(sandbox, api_url=sandbox.base_url.replace("127.0.0.1", "localhost")), [USERS, *planned_users(0, 2)]
    )
    assert local.returncode == 0, local.stderr


def test_retry_after_in_every_form():
    from target_segmetrics.http.answers import parse_retry_after as _parse_retry_after

    assert _parse_retry_after("2") == 2.0
    assert _parse_retry_after("Sun Nov  6 08:49:37 1994") == 0.0  # a date in the past, no zone: now
    assert _parse_retry_after("Wed, 21 Oct 2099 07:28:00 GMT") == 300.0  # capped
    assert _parse_retry_after("soon") is None
    assert _parse_retry_after("nan") is None
