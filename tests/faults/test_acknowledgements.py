"""Only SegMetrics' own success is an acknowledgement: any other 2xx is retried, then stops the run.

SegMetrics answers a write with HTTP 200 and ``{"status": "success"}`` (a DELETE with
``{"id": ..., "status": "success", "object": ..., "deleted": true}``). A 2xx with an empty body,
``[]``, ``null``, ``"ok"``, ``{}`` or ``{"status": "fail"}`` comes from something else (a proxy, a
stub, a broken gateway): the write is not known to have landed, so no STATE may pass it.
"""

from __future__ import annotations

import pytest
from helpers import USERS, base_config, record, state, user_email, users

from target_segmetrics.sandbox import NOT_ACKNOWLEDGEMENTS, Answers

MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}
TAGGING = {"users": {**MAPPING["users"], "tags": [{"value": "Member"}], "tags_mode": "add"}}


def for_email(email: str):
    return lambda ctx: isinstance(ctx.body, dict) and ctx.body.get("email") == email


def for_path(path: str):
    return lambda ctx: ctx.path == path


def done(run) -> list[int]:
    return [printed["done"] for printed in run.states]


@pytest.mark.parametrize("name", list(NOT_ACKNOWLEDGEMENTS))
def test_a_2xx_that_is_not_segmetrics_success_is_no_acknowledgement(sandbox, run_target, name):
    status, body = NOT_ACKNOWLEDGEMENTS[name]
    sandbox.faults = Answers(status, body, matches=for_email(user_email(5)))
    run = run_target(base_config(sandbox, mappings=MAPPING, max_retries=2), [USERS, *users(0, 12, state_every=1)])

    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert len(run.errors) == 1, run.errors
    assert "did not accept POST contact after 3 tries" in run.errors[0]
    assert "not SegMetrics' success" in run.errors[0]
    assert sandbox.faults.answered == 3  # retried like a transient fault
    # Records 0-4 landed before it: STATE may say so, never more.
    assert done(run), run.stderr[-2000:]
    assert max(done(run)) <= 5


def test_an_answer_that_is_not_an_acknowledgement_is_retried_and_a_success_then_counts(sandbox, run_target):
    sandbox.faults = Answers(200, b"", matches=for_email(user_email(3)), times=1)
    run = run_target(base_config(sandbox, mappings=MAPPING, max_retries=2), [USERS, *users(0, 8, state_every=4)])

    assert run.returncode == 0, run.stderr[-2000:]
    assert done(run)[-1] == 8
    assert sorted(c["email"] for c in sandbox.contacts()) == sorted(user_email(i) for i in range(8))
    tries = [
        e for e in sandbox.requests_log() if isinstance(e["body"], dict) and e["body"].get("email") == user_email(3)
    ]
    assert [e["fault"] for e in tries] == ["answer 200 after write", None]


def test_a_tags_request_needs_segmetrics_success_too(sandbox, run_target):
    sandbox.faults = Answers(200, b"{}", matches=for_path("tags/add"))
    run = run_target(base_config(sandbox, mappings=TAGGING, max_retries=1), [USERS, *users(0, 1), state({"done": 1})])

    assert run.returncode == 1
    assert "did not accept POST tags/add after 2 tries" in run.errors[0]
    assert run.states == []


@pytest.mark.parametrize(
    "body",
    [b'{"status": "success"}', b'{"id": "1", "status": "success", "object": "contact", "deleted": false}', b"{}"],
)
def test_a_delete_is_acknowledged_only_by_segmetrics_delete_answer(sandbox, run_target, body):
    assert run_target(base_config(sandbox, mappings=MAPPING), [USERS, *users(0, 2)]).returncode == 0
    sandbox.faults = Answers(200, body, matches=for_path("contact/1"))
    gone = record("users", {"id": 1, "email": user_email(1), "_sdc_deleted_at": "2024-01-01T00:00:00Z"})
    config = base_config(sandbox, mappings=MAPPING, max_retries=1, hard_delete=True)
    run = run_target(config, [USERS, gone, state({"done": "deleted"})])

    assert run.returncode == 1
    assert "did not accept DELETE contact/1 after 2 tries" in run.errors[0]
    assert run.states == []


def test_segmetrics_delete_answer_acknowledges_a_delete(sandbox, run_target):
    assert run_target(base_config(sandbox, mappings=MAPPING), [USERS, *users(0, 2)]).returncode == 0
    gone = record("users", {"id": 1, "email": user_email(1), "_sdc_deleted_at": "2024-01-01T00:00:00Z"})
    run = run_target(base_config(sandbox, mappings=MAPPING, hard_delete=True), [USERS, gone, state({"done": 1})])

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.states == [{"done": 1}]
    assert [c["email"] for c in sandbox.contacts()] == [user_email(0)]
