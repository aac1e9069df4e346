"""When the setup is wrong, the run stops: nothing is written off as rejected, STATE passes nothing.

A wrong integration, a proxy answering for SegMetrics, a mapping SegMetrics refuses every time: each
looks like "every record was refused". Taps emit deletes and tag events once, and a STATE that passes
them moves the bookmark for good, so these stop the run instead.
"""

from __future__ import annotations

import http.server
import threading

import pytest
from helpers import API_KEY, base_config, record, schema, state

from target_segmetrics.sandbox import Faults

USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})
MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}


@pytest.fixture
def hostile_server():
    """A server on 127.0.0.1 that answers every POST with one status and body (a proxy, a firewall)."""
    servers = []

    def start(status: int, body: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/api/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def base_config_for(url: str) -> dict:
    return {"api_key": API_KEY, "account_id": "a", "integration_id": "i", "api_url": url, "mappings": MAPPING}


def users(count: int, every: int = 10) -> list[dict]:
    messages = [USERS]
    for i in range(count):
        messages.append(record("users", {"id": i, "email": f"u{i}@example.com"}))
        if (i + 1) % every == 0:
            messages.append(state({"done": i + 1}))
    return messages


def test_segmetrics_refusing_nearly_everything_stops_the_run_before_the_input_is_burned(sandbox, run_target):
    sandbox.faults = Faults(error_rate=1.0, error_status=400)
    run = run_target(base_config(sandbox, mappings=MAPPING, max_concurrency=4), users(500))
    assert run.returncode == 1
    assert "the setup is wrong, not the data" in run.stderr
    assert sandbox.request_count < 60  # it stopped soon, not after 500 refusals
    assert run.stdout == ""  # no STATE passes a refused record
    assert "Traceback" not in run.stderr


def test_a_few_refusals_among_many_are_data_problems_and_the_run_goes_on(sandbox, run_target):
    faults = Faults()
    faults.script(*[400] * 5)
    sandbox.faults = faults
    run = run_target(base_config(sandbox, mappings=MAPPING, max_concurrency=4), users(120))
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Rejected record") == 3  # a reason is logged for the first 3 records
    assert "5 by SegMetrics (HTTP 400)" in run.stderr  # the summary counts them all
    assert len(sandbox.contacts()) == 115
    assert run.states[-1] == {"done": 120}


TAG_EVENTS = schema("tag_events", {"email": {"type": "string"}, "tag": {"type": "string"}}, key_properties=())
TAGS_MAPPING = {"tag_events": {"object": "tags", "fields": {"email": "email"}, "tags": ["tag"]}}


def tag_events(count: int) -> list[dict]:
    messages = [TAG_EVENTS]
    for i in range(count):
        messages += [record("tag_events", {"email": f"u{i}@example.com", "tag": "Webinar"}), state({"done": i + 1})]
    return messages


def deletes(count: int) -> list[dict]:
    messages = [USERS]
    for i in range(count):
        deleted = {"id": i, "email": f"u{i}@example.com", "_sdc_deleted_at": "2024-05-01T00:00:00Z"}
        messages += [record("users", deleted), state({"done": i + 1})]
    return messages


def test_tag_events_against_a_misspelled_integration_stop_the_run(sandbox, run_target):
    run = run_target(base_config(sandbox, integration_id="int-typo", mappings=TAGS_MAPPING), tag_events(50))
    assert run.returncode == 1
    assert "integration 'int-typo'" in run.stderr and "integration_id" in run.stderr
    assert "Rejected record" not in run.stderr  # not 50 missing contacts
    assert run.stdout == ""  # no STATE: the tag events are still to be sent


def test_deletes_against_a_misspelled_integration_stop_the_run(sandbox, run_target):
    config = base_config(sandbox, integration_id="int-typo", mappings=MAPPING, hard_delete=True)
    run = run_target(config, deletes(50))
    assert run.returncode == 1
    assert "integration 'int-typo'" in run.stderr
    assert run.stdout == ""  # taps emit a delete once: no STATE may pass it


def test_a_tag_event_for_a_contact_segmetrics_does_not_hold_yet_is_parked(sandbox, run_target):
    run = run_target(base_config(sandbox, mappings=TAGS_MAPPING), tag_events(3))
    assert run.returncode == 0, run.stderr
    assert "Rejected record" not in run.stderr
    assert "3 records parked, waiting for their contact" in run.stderr
    assert run.states[-1] == {"done": 3}  # parked in the store: durable, so STATE may pass them


def test_deletes_of_contacts_already_gone_are_done(sandbox, run_target):
    run = run_target(base_config(sandbox, mappings=MAPPING, hard_delete=True), deletes(3))
    assert run.returncode == 0, run.stderr
    assert "Rejected record" not in run.stderr
    assert run.states[-1] == {"done": 3}


def test_a_proxy_answering_400_with_a_page_stops_the_run(run_target, hostile_server):
    url = hostile_server(400, b"<html><body>Request blocked by policy</body></html>")
    run = run_target(base_config_for(url), users(30))
    assert run.returncode == 1
    assert "not SegMetrics' answer" in run.stderr
    assert "Rejected record" not in run.stderr
    assert run.stdout == ""
