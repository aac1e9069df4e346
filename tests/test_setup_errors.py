"""When the setup is wrong, the run stops: nothing is written off as rejected, STATE passes nothing.

A wrong integration, a proxy answering for SegMetrics, a mapping SegMetrics refuses every time: each
looks like "every record was refused". Taps emit deletes and tag events once, and a STATE that passes
them moves the bookmark for good, so these stop the run instead.
"""

from __future__ import annotations

from conftest import base_config, record, schema, state

from target_segmetrics.sandbox import Faults

USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})
MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}


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
    assert run.stderr.count("Rejected record") == 5
    assert len(sandbox.contacts()) == 115
    assert run.states[-1] == {"done": 120}
