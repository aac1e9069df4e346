"""A config file that is missing, unreadable or not a JSON object stops the run with one line naming it.

No traceback: the line names the file and, for malformed JSON, the line and column of the mistake.
"""

from __future__ import annotations

import pytest
from helpers import API_KEY, record, run_in_process, schema, singer_text

INPUT = [schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}}), record("users", {"id": 1})]


def run_with(tmp_path, config_path):
    source = tmp_path / "input.singer"
    source.write_text(singer_text(INPUT))
    return run_in_process(config_path, source, timeout=60)


def only_line(run) -> str:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == "", run.stderr
    assert len(run.errors) == 1, run.stderr
    assert run.stderr.strip().splitlines() == run.errors, run.stderr  # nothing else was printed
    return run.errors[0]


def test_a_missing_config_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "config.jsn"
    line = only_line(run_with(tmp_path, path))
    assert f"Config file '{path}' does not exist; nothing was read or sent" in line


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"api_key": "k",\n "account_id": }\n', "line 2, column 16: Expecting value"),
        (
            '{"api_key": "k", "account_id": "a",}',
            "line 1, column 36: Expecting property name enclosed in double quotes",
        ),
        ("", "line 1, column 1: Expecting value"),
    ],
)
def test_malformed_json_in_the_config_file_names_the_file_line_and_column(tmp_path, text, where):
    path = tmp_path / "config.json"
    path.write_text(text)
    line = only_line(run_with(tmp_path, path))
    assert f"Config file '{path}' is not valid JSON: {where}" in line


def test_a_config_file_that_is_not_an_object_or_not_a_file_is_named(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(f'[{{"api_key": "{API_KEY}"}}]')
    assert f"Config file '{listed}' holds a JSON list, not an object of settings" in only_line(
        run_with(tmp_path, listed)
    )
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert f"Config file '{folder}' is a directory, not a JSON file" in only_line(run_with(tmp_path, folder))
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"account_id": "caf\xe9"}')
    assert f"Config file '{latin}' is not UTF-8 text (byte 19)" in only_line(run_with(tmp_path, latin))
    # The key in a config that is otherwise wrong never reaches the log.
    assert API_KEY not in run_with(tmp_path, listed).stderr
