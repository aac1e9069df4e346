"""Files the run writes (the store, rejects, summary, dry-run output) that cannot be opened stop it
before the first request, with one line naming the setting: never a traceback after the run."""

from __future__ import annotations

import pytest
from helpers import USERS, base_config, record, users

MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}
BAD = record("users", {"id": 99, "email": "not an email"})

# Where the directory says "writable" to os.access (as root) but no file can be created in it.
UNOPENABLE = ["/proc/segmetrics-test/out.json", "/sys/segmetrics-test.json", "/proc/self/segmetrics-test.json"]


def assert_stopped_up_front(run, sandbox, setting: str) -> None:
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    named = [line for line in run.errors if setting in line]
    assert len(named) == 1, run.errors
    assert sandbox.request_count == 0  # nothing was sent
    assert run.states == []


@pytest.mark.parametrize("path", [p.replace("out.json", "store.sqlite3") for p in UNOPENABLE])
def test_a_state_db_path_that_cannot_be_created_stops_with_one_line(sandbox, run_target, path):
    run = run_target(base_config(sandbox, mappings=MAPPING, state_db_path=path), [USERS, *users(0, 3)])
    assert_stopped_up_front(run, sandbox, "state_db_path")


@pytest.mark.parametrize("setting", ["summary_path", "rejects_path"])
@pytest.mark.parametrize("path", UNOPENABLE)
def test_an_output_file_that_cannot_be_opened_stops_before_the_first_request(sandbox, run_target, setting, path):
    run = run_target(base_config(sandbox, mappings=MAPPING, **{setting: path}), [USERS, *users(0, 3), BAD])
    assert_stopped_up_front(run, sandbox, setting)


@pytest.mark.parametrize("path", UNOPENABLE)
def test_a_dry_run_path_that_cannot_be_opened_stops_before_anything_is_read(sandbox, run_target, path):
    config = base_config(sandbox, mappings=MAPPING, dry_run=True, dry_run_path=path)
    run = run_target(config, [USERS, *users(0, 3)])
    assert_stopped_up_front(run, sandbox, "dry_run_path")


def test_output_files_that_can_be_opened_are_written_and_none_is_left_empty(sandbox, run_target, tmp_path):
    rejects, summary = tmp_path / "out" / "rejects.jsonl", tmp_path / "out" / "summary.json"
    config = base_config(sandbox, mappings=MAPPING, rejects_path=str(rejects), summary_path=str(summary))
    run = run_target(config, [USERS, *users(0, 3)])
    assert run.returncode == 0, run.stderr[-2000:]
    assert summary.exists()
    assert not rejects.exists()  # nothing rejected: no empty rejects file
