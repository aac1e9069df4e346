"""End-to-end: the installed CLI over Singer input against the sandbox; what SegMetrics holds after."""

from __future__ import annotations

import json

from helpers import API_KEY, DATA, USERS, RefuseEmail, base_config, record, schema, scripted, state, user_email, users


def tag_names(contact: dict) -> list[str]:
    return sorted(tag["name"] for tag in contact["tags"])


# --- streams without a mapping: contacts by property name --------------------------------------


def test_name_matching_sends_contact_fields_and_skips_other_streams(sandbox, run_target):
    run = run_target(base_config(sandbox), DATA / "users_by_name.singer")
    assert run.returncode == 0, run.stderr

    ada = sandbox.contact("u-1")
    assert ada["email"] == "ada@example.com"
    assert ada["first_name"] == "Ada"
    assert ada["last_name"] == "Lovelace"
    assert ada["date_created"] == "2024-02-14 16:05:12"
    assert ada["utm_source"] == "newsletter"
    assert "plan" not in ada and "plan" not in ada["custom_fields"]  # not a contact field: dropped
    assert tag_names(ada) == ["Beta", "Customer"]

    grace = sandbox.contact("grace@example.com")
    assert grace["first_name"] == "Grace"
    assert grace["contact_id"] is None
    linus = sandbox.contact("u-3")
    assert linus["date_created"] == "2024-03-01 07:00:00"  # +01:00 written in UTC
    assert len(sandbox.contacts()) == 3

    # The orders stream has no email/contact_id: one warning naming it, nothing sent for it.
    assert len([w for w in run.warnings if "'orders'" in w and "NOT sent" in w]) == 1
    assert [entry["path"] for entry in sandbox.requests_log()] == ["contact"] * 3
    # STATE passed on once everything before it was acknowledged: the last one, on stdout.
    assert run.states[-1] == {"bookmarks": {"users": {"replication_key_value": "2024-03-01T08:00:00+01:00"}}}


def test_streams_not_in_mappings_are_skipped_with_a_warning(sandbox, run_target):
    config = base_config(sandbox, mappings={"people": {"fields": {"email": "email"}}})
    run = run_target(config, DATA / "users_by_name.singer")
    assert run.returncode == 0, run.stderr
    assert sandbox.contacts() == []
    skipped = [w for w in run.warnings if "not listed in 'mappings'" in w]
    assert len(skipped) == 2 and any("'users'" in w for w in skipped) and any("'orders'" in w for w in skipped)
    assert sandbox.request_count == 0
    # The STATE still moves on: nothing was asked of those streams.
    assert run.states[-1] == {"bookmarks": {"users": {"replication_key_value": "2024-03-01T08:00:00+01:00"}}}


# --- a configured mapping ------------------------------------------------------------------------


CRM_SCHEMA = schema(
    "crm_people",
    {
        "id": {"type": "string"},
        "profile": {
            "type": "object",
            "properties": {"mail": {"type": ["string", "null"]}, "given": {"type": ["string", "null"]}},
        },
        "stage": {"type": ["string", "null"]},
        "interests": {"type": ["string", "null"]},
        "unsubscribed": {"type": ["boolean", "null"]},
        "company": {"type": ["string", "null"]},
        "score": {"type": ["number", "null"]},
    },
)
CRM_MAPPING = {
    "fields": {
        "contact_id": "id",
        "email": "profile.mail",
        "first_name": "profile.given",
        "status": {"path": "unsubscribed", "map": {"true": "inactive", "false": "active"}},
    },
    "tags": [
        {"path": "stage", "format": "Stage: {}"},
        {"path": "interests", "split": ";", "transform": "strip"},
    ],
    "custom_fields": {"Company": "company", "Score": "score"},
}


def crm(pid, mail, given, stage, interests, unsub, company, score):
    return record(
        "crm_people",
        {
            "id": pid,
            "profile": {"mail": mail, "given": given},
            "stage": stage,
            "interests": interests,
            "unsubscribed": unsub,
            "company": company,
            "score": score,
        },
    )


def test_mapping_fields_tags_custom_fields_replace_mode(sandbox, run_target):
    config = base_config(sandbox, mappings={"crm_people": CRM_MAPPING})
    first = [
        CRM_SCHEMA,
        crm("p1", "mo@example.com", "Mo", "lead", "webinars; ebooks", False, "Acme", 4.5),
        state({"run": 1}),
    ]
    run = run_target(config, first)
    assert run.returncode == 0, run.stderr
    mo = sandbox.contact("p1")
    assert mo["email"] == "mo@example.com"
    assert mo["status"] == "active"
    assert tag_names(mo) == ["Stage: lead", "ebooks", "webinars"]
    assert mo["custom_fields"] == {"Company": "Acme", "Score": 4.5}
    assert run.states == [{"run": 1}]

    # Next sync: the stage moved on, one interest dropped, company unknown now, unsubscribed.
    second = [CRM_SCHEMA, crm("p1", "mo@example.com", "Mo", "customer", "ebooks", True, None, 5), state({"run": 2})]
    run = run_target(config, second)
    assert run.returncode == 0, run.stderr
    mo = sandbox.contact("p1")
    assert tag_names(mo) == ["Stage: customer", "ebooks"]  # replace: tags are exactly the mapped ones
    assert mo["status"] == "inactive"
    assert mo["custom_fields"] == {"Company": "Acme", "Score": 5}  # merged; a null source sends nothing


def test_tags_mode_add_keeps_existing_tags(sandbox, run_target):
    config = base_config(sandbox, mappings={"crm_people": {**CRM_MAPPING, "tags_mode": "add"}})
    run_target(config, [CRM_SCHEMA, crm("p1", "mo@example.com", "Mo", "lead", None, False, None, None)])
    run = run_target(config, [CRM_SCHEMA, crm("p1", "mo@example.com", "Mo", "customer", None, False, None, None)])
    assert run.returncode == 0, run.stderr
    assert tag_names(sandbox.contact("p1")) == ["Stage: customer", "Stage: lead"]
    paths = [entry["path"] for entry in sandbox.requests_log()]
    assert paths == ["contact", "tags/add", "contact", "tags/add"]
    assert all("tags" not in entry["body"] for entry in sandbox.requests_log() if entry["path"] == "contact")


def test_email_match_rule_gives_an_email_only_contact_its_id(sandbox, run_target):
    config = base_config(sandbox, mappings={"crm_people": CRM_MAPPING})
    by_email = {**CRM_MAPPING, "fields": {k: v for k, v in CRM_MAPPING["fields"].items() if k != "contact_id"}}
    run_target(
        base_config(sandbox, mappings={"crm_people": by_email}),
        [CRM_SCHEMA, crm("p9", "zoe@example.com", "Zoë", None, None, None, None, None)],
    )
    assert sandbox.contact("zoe@example.com")["contact_id"] is None
    run = run_target(config, [CRM_SCHEMA, crm("p9", "zoe@example.com", "Zoë", None, None, None, None, None)])
    assert run.returncode == 0, run.stderr
    assert len(sandbox.contacts()) == 1
    assert sandbox.contact("p9")["first_name"] == "Zoë"


# --- bad records: rejected, reported, kept; the rest goes on -------------------------------------


BAD_MAPPING = {
    "contacts": {
        "fields": {"email": "email", "first_name": "name", "date_created": "signed_up"},
        "custom_fields": {"Score": "score"},
    }
}


def test_bad_records_are_rejected_with_a_reason_and_the_rest_lands(sandbox, run_target, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings=BAD_MAPPING, rejects_path=str(rejects))
    run = run_target(config, DATA / "contacts_bad.singer")
    assert run.returncode == 0, run.stderr

    assert sorted(c["email"] for c in sandbox.contacts()) == ["good1@example.com", "good2@example.com"]
    rejected = [w for w in run.warnings if "Rejected record" in w]
    assert len(rejected) == 4
    expectations = {
        "id=2": "email: 'not-an-email' is not an email address",
        "id=3": "contact_id or email: missing",
        "id=4": "date_created: 'the fifth of May' is not an ISO 8601 date",
        "id=5": "score: does not match the stream's schema",
    }
    for key, reason in expectations.items():
        line = next(w for w in rejected if f"({key})" in w)
        assert "stream 'contacts'" in line and reason in line, line

    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [k["key"] for k in kept] == ["id=2", "id=3", "id=4", "id=5"]
    assert kept[0]["record"]["name"] == "Bad Email" and kept[0]["stream"] == "contacts"
    assert kept[0]["reasons"] == ["email: 'not-an-email' is not an email address"]
    assert "4 rejected" in run.stderr
    assert run.states == [{"bookmarks": {"contacts": {"id": 6}}}]


def test_on_reject_fail_stops_without_passing_state(sandbox, run_target):
    config = base_config(sandbox, mappings=BAD_MAPPING, on_reject="fail")
    run = run_target(config, DATA / "contacts_bad.singer")
    assert run.returncode == 1
    assert run.states == []
    assert "Traceback" not in run.stderr
    assert any("on_reject is 'fail'" in e and "(id=2)" in e for e in run.errors)


def test_a_record_segmetrics_refuses_is_rejected_with_the_apis_errors(sandbox, run_target, tmp_path):
    sandbox.faults = RefuseEmail("refused@example.com")
    rejects = tmp_path / "rejects.jsonl"
    config = base_config(sandbox, mappings={"crm_people": CRM_MAPPING}, rejects_path=str(rejects))
    messages = [
        CRM_SCHEMA,
        crm("p1", "refused@example.com", "No", None, None, None, None, None),
        crm("p2", "ok@example.com", "Ok", None, None, None, None, None),
        state({"done": True}),
    ]
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    assert [c["email"] for c in sandbox.contacts()] == ["ok@example.com"]
    line = next(w for w in run.warnings if "Rejected record" in w)
    assert "stream 'crm_people' (id=p1) by SegMetrics (HTTP 400): contact:" in line
    kept = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert kept[0]["payload"]["email"] == "refused@example.com"
    assert kept[0]["rejected_by"] == "by SegMetrics (HTTP 400)"
    assert run.states == [{"done": True}]


def test_transient_failures_are_retried_until_they_land(sandbox, run_target):
    sandbox.faults = scripted(503, 429, "drop", "lost")
    run = run_target(base_config(sandbox, max_retries=5), [USERS, *users(0, 3, state_every=1)])
    assert run.returncode == 0, run.stderr
    assert sorted(c["email"] for c in sandbox.contacts()) == [user_email(i) for i in range(3)]
    assert "4 retries" in run.stderr  # the summary counts them
    assert run.states[-1] == {"done": 3}


# In a separate process: the fatal error comes while other requests are retrying, which the target
# may abandon (os._exit).
def test_api_down_past_the_retry_budget_stops_without_state(sandbox, run_target_process):
    sandbox.faults = scripted(*[503] * 20)
    run = run_target_process(base_config(sandbox, max_retries=2), [USERS, *users(0, 3, state_every=1)])
    assert run.returncode == 1
    assert run.states == []
    assert any("did not accept POST contact after 3 tries" in e for e in run.errors)
    assert "Traceback" not in run.stderr


# --- fatal answers: stop at once, say what to fix, no STATE, no key ------------------------------


def test_wrong_key_stops_at_once(sandbox, run_target):
    config = base_config(sandbox, api_key="sk-wrong-0000000000")
    run = run_target(config, [USERS, *users(0, 50, state_every=1)])
    assert run.returncode == 1
    assert run.states == []
    assert sandbox.request_count <= 3
    assert len(run.errors) == 1
    assert "refused the API key (HTTP 401)" in run.errors[0]
    assert "account 'acct1', integration 'int1'" in run.errors[0]
    assert "sk-wrong-0000000000" not in run.everything()
    assert "Traceback" not in run.stderr


def test_wrong_integration_stops_at_once(sandbox, run_target):
    run = run_target(base_config(sandbox, integration_id="nope"), [USERS, *users(0, 50, state_every=1)])
    assert run.returncode == 1
    assert run.states == []
    assert sandbox.request_count <= 3
    assert any("has no account 'acct1', integration 'nope'" in e and "integration_id" in e for e in run.errors)


def test_malformed_mapping_is_refused_before_any_request(sandbox, run_target):
    config = base_config(
        sandbox,
        mappings={
            "users": {
                "object": "contact",
                "fields": {"email": {"pth": "email"}},
                "tags": ["stage", {"path": "x", "transform": "shout"}],
            }
        },
    )
    run = run_target(config, [USERS, *users(0, 3, state_every=1)])
    assert run.returncode == 1
    assert sandbox.request_count == 0
    assert "mappings.users.fields.email: unknown key(s) pth" in run.stderr
    assert "mappings.users.tags[1].transform: unknown transform 'shout'" in run.stderr
    assert "Traceback" not in run.stderr


def test_plain_http_to_a_remote_host_is_refused(sandbox, run_target):
    run = run_target(
        base_config(sandbox, api_url="http://import.example.com/api/v1"), [USERS, *users(0, 1, state_every=1)]
    )
    assert run.returncode == 1
    assert "plain http://" in run.stderr


def test_the_key_never_appears_in_anything_printed(sandbox, run_target):
    config = base_config(sandbox, mappings=BAD_MAPPING)
    run = run_target(config, DATA / "contacts_bad.singer")
    assert run.returncode == 0
    assert API_KEY not in run.everything()
    assert [entry["auth_ok"] for entry in sandbox.requests_log()] == [True, True]  # the two good records


# --- the SDK's built-in capabilities stay on ------------------------------------------------------


def test_stream_maps_and_flattening(sandbox, run_target):
    config = base_config(
        sandbox,
        flattening_enabled=True,
        flattening_max_depth=3,
        stream_maps={"crm_people": {"__alias__": "people", "__filter__": "stage != 'spam'"}},
        mappings={"people": CRM_MAPPING},
    )
    messages = [
        CRM_SCHEMA,
        crm("p1", "mo@example.com", "Mo", "lead", None, None, None, None),
        crm("p2", "spam@example.com", "Spam", "spam", None, None, None, None),
    ]
    run = run_target(config, messages)
    assert run.returncode == 0, run.stderr
    assert [c["email"] for c in sandbox.contacts()] == ["mo@example.com"]  # filtered by the stream map
    assert sandbox.contact("p1")["first_name"] == "Mo"  # profile.given found as profile__given


def test_validate_records_off_lets_the_mapping_decide(sandbox, run_target):
    config = base_config(sandbox, mappings=BAD_MAPPING, validate_records=False)
    run = run_target(config, DATA / "contacts_bad.singer")
    assert run.returncode == 0
    assert sandbox.contact("schema@example.com")["custom_fields"] == {"Score": "lots"}


def test_batch_size_rows_sends_in_batches(sandbox, run_target):
    run = run_target(base_config(sandbox, batch_size_rows=10), [USERS, *users(0, 25, state_every=1)])
    assert run.returncode == 0, run.stderr
    assert len(sandbox.contacts()) == 25
    assert run.stderr.count("is full") == 2  # 10 + 10 drained as full batches, 5 at the end
    assert run.states[-1] == {"done": 25}
