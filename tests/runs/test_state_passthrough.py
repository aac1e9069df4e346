"""STATE goes back out exactly as it came: the same text, whatever numbers it holds; a null one is
not passed on and does not discard the STATE before it."""

from __future__ import annotations

import json

import pytest
from helpers import USERS, base_config, user, user_email

MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}
BIG = "9" * 5000  # past Python's 4300-digit limit on int <-> str


def singer_lines(tmp_path, *lines: str):
    path = tmp_path / "tap.singer"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def line(message: dict) -> str:
    return json.dumps(message)


def state_line(value_text: str) -> str:
    return '{"type": "STATE", "value": ' + value_text + "}"


@pytest.mark.parametrize(
    "value_text",
    [
        '{"bookmarks": {"users": {"replication_key": "updated", "replication_key_value": 1717171717.5}}}',
        '{"singer_state": {"bookmarks": {"users": {"replication_key_value": 1717171717.5}}}}',
        '{"bookmarks": {"users": {"replication_key_value": ' + BIG + "}}}",
        '{"n": -' + BIG + '.25, "exp": 1e5, "EXP": 2.5E-7, "zeros": 1.500, "negzero": -0.0, "huge": 1E+400}',
        '{"ints": [0, -0, 17], "text": "caf\\u00e9 \\ud83d\\ude00", "nested": {"a": [1.0, {"b": null}]}}',
    ],
    ids=["float", "meltano-wrapped float", "5000-digit integer", "number spellings", "escapes"],
)
def test_a_state_goes_back_out_as_the_same_text(sandbox, run_target, tmp_path, value_text):
    tap = singer_lines(
        tmp_path, line(USERS), line(user(1)), state_line(value_text), line(user(2)), state_line(value_text)
    )
    run = run_target(base_config(sandbox, mappings=MAPPING), tap)

    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.stdout.splitlines() == [value_text]
    assert sorted(c["email"] for c in sandbox.contacts()) == [user_email(1), user_email(2)]


def test_a_null_state_does_not_discard_the_state_before_it(sandbox, run_target, tmp_path):
    tap = singer_lines(
        tmp_path,
        line(USERS),
        line(user(1)),
        state_line('{"done": 1}'),
        line(user(2)),
        state_line("null"),
        state_line("null"),
    )
    run = run_target(base_config(sandbox, mappings=MAPPING), tap)

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ['{"done": 1}']
    said = [entry for entry in run.stderr.splitlines() if "null" in entry and "STATE" in entry]
    assert len(said) == 1, said
    assert "not passed on" in said[0] and "Line 5" in said[0]


def test_a_state_after_a_null_one_is_passed_on(sandbox, run_target, tmp_path):
    tap = singer_lines(
        tmp_path, line(USERS), state_line("null"), line(user(1)), state_line('{"done": 1}'), line(user(2))
    )
    run = run_target(base_config(sandbox, mappings=MAPPING), tap)

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ['{"done": 1}']
    assert len(sandbox.contacts()) == 2


@pytest.mark.parametrize(
    ("state_text", "printed"),
    [
        ('{"type": "STATE", "value": {"a": 1}, "value": {"b": 2.50}}', '{"b": 2.50}'),  # JSON keeps the last
        ('{"type": "\\u0053TATE", "value": {"a": 2.50}}', '{"a":2.50}'),  # read the plain way: same value
        ('  {"value" : {"a": 1.0} , "type":"STATE"}  ', '{"a": 1.0}'),
    ],
    ids=["two values", "escaped type", "value first"],
)
def test_any_spelling_of_a_state_message_passes_its_value_on(sandbox, run_target, tmp_path, state_text, printed):
    run = run_target(base_config(sandbox, mappings=MAPPING), singer_lines(tmp_path, line(USERS), state_text))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == [printed]


def test_a_broken_state_line_is_named_and_stops_the_run(sandbox, run_target, tmp_path):
    tap = singer_lines(tmp_path, line(USERS), line(user(1)), '{"type": "STATE", "value": {"a": 1.5}')
    run = run_target(base_config(sandbox, mappings=MAPPING), tap)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "Line 3: not valid JSON" in run.stderr
    assert run.stdout == ""
