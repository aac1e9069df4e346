"""Messages that name what to fix: a wrong api_url path, a host where nothing answers, a stream name
one letter off its mapping entry."""

from __future__ import annotations

import json
import socket

from helpers import API_KEY, base_config, record, schema

LEADS = schema("leads", {"id": {"type": "integer"}, "email": {"type": "string"}})
LEAD_MAPPING = {"lead": {"fields": {"email": "email", "contact_id": {"path": "id", "transform": "string"}}}}


def leads(n: int) -> list[dict]:
    return [LEADS, *[record("leads", {"id": i, "email": f"l{i}@example.com"}) for i in range(n)]]


def test_a_404_under_an_api_url_whose_path_is_not_the_apis_names_the_api_url(sandbox, run_target):
    wrong = sandbox.base_url.removesuffix("/api/v1") + "/api/v2"
    config = base_config(sandbox, api_url=wrong, mappings={"leads": LEAD_MAPPING["lead"]})
    run = run_target(config, leads(1))
    assert run.returncode == 1
    [error] = run.errors
    assert f"HTTP 404 on contact at api_url '{wrong}': its path '/api/v2' is not the import API's '/api/v1'" in error
    assert "api_url is most likely wrong" in error
    assert "Traceback" not in run.stderr and API_KEY not in run.stderr
    # The right path, a wrong integration: the message is about the account and integration.
    run = run_target(base_config(sandbox, integration_id="nope", mappings={"leads": LEAD_MAPPING["lead"]}), leads(1))
    [error] = run.errors
    assert "SegMetrics has no account 'acct1', integration 'nope' (HTTP 404 on contact)" in error
    assert "api_url" not in error


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed: the connection is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_names_the_host_and_port_and_is_not_a_dropped_connection(sandbox, run_target, tmp_path):
    port = free_port()
    summary = tmp_path / "summary.json"
    config = base_config(
        sandbox,
        api_url=f"http://127.0.0.1:{port}/api/v1",
        mappings={"leads": LEAD_MAPPING["lead"]},
        max_retries=2,
        summary_path=str(summary),
    )
    run = run_target(config, leads(1))
    assert run.returncode == 1
    [error] = run.errors
    assert f"nothing answers at 127.0.0.1:{port} (connection refused)" in error
    assert f"Check api_url's host and port (127.0.0.1:{port})" in error
    assert "dropped connection" not in run.stderr
    assert "2 retries (2 refused connections)" in run.stderr
    row = json.loads(summary.read_text())["streams"]["leads"]
    assert row["retries_by_kind"] == {"refused connection": 2}


def test_a_stream_one_letter_off_its_mapping_entry_gets_a_did_you_mean(sandbox, run_target):
    run = run_target(base_config(sandbox, mappings=LEAD_MAPPING), leads(2))
    assert run.returncode == 0, run.stderr
    assert sandbox.contacts() == []
    [warning] = [line for line in run.warnings if "Stream 'leads' is not listed" in line]
    assert "(listed: lead): did you mean the entry 'lead'?" in warning
    # The summary names the entry that matched no stream, next to the stream like it.
    assert "  mappings entry 'lead' matched no stream of this run: did you mean 'leads'?" in run.stderr
    # With on_unmapped_stream: fail the run stops, saying the same.
    failed = run_target(base_config(sandbox, mappings=LEAD_MAPPING, on_unmapped_stream="fail"), leads(1))
    assert failed.returncode == 1
    assert any("did you mean the entry 'lead'?" in line for line in failed.errors), failed.stderr


def test_a_stream_that_differs_only_in_case_is_pointed_at_its_entry_and_a_far_name_is_not(sandbox, run_target):
    upper = {"Leads": LEAD_MAPPING["lead"], "orders": {"ignore": "not for SegMetrics"}}
    run = run_target(base_config(sandbox, mappings=upper), leads(1))
    assert any("did you mean the entry 'Leads'?" in line for line in run.warnings), run.warnings
    far = {"invoices": {"object": "product", "fields": {"id": "id", "name": "email"}}}
    run = run_target(base_config(sandbox, mappings=far), leads(1))
    assert not [line for line in run.stderr.splitlines() if "did you mean" in line], run.stderr
