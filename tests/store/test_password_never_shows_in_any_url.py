"""The database password never shows, however the URL carries it: ``?password=...`` in the query, or an
``@`` left unencoded in the password (which a URL parser takes for part of the host)."""

from __future__ import annotations

from helpers import LOOKUP_DEALS, LOOKUP_MAPPINGS, base_config
from pg_server import _free_port

SECRET = "pw-Qu3ry-7d1e"


def test_a_password_in_the_query_never_shows_in_the_parked_line(sandbox, run_target, tmp_path, postgres_url):
    summary = tmp_path / "summary.json"
    url = f"{postgres_url}?password={SECRET}"
    config = base_config(sandbox, mappings=LOOKUP_MAPPINGS, state_db_url=url, summary_path=str(summary))
    run = run_target(config, LOOKUP_DEALS)  # no contacts yet: the deals are parked
    assert run.returncode == 0, run.stderr
    assert "2 records parked" in run.stderr
    assert SECRET not in run.everything() and SECRET not in summary.read_text()


def test_a_password_with_an_unencoded_at_never_shows_in_the_error(sandbox, run_target):
    port = _free_port()  # nothing listens there
    url = f"postgresql://postgres:{SECRET}@part@127.0.0.1:{port}/segmetrics"
    run = run_target(base_config(sandbox, mappings=LOOKUP_MAPPINGS, state_db_url=url), LOOKUP_DEALS)
    assert run.returncode == 1
    assert [line for line in run.errors if "cannot be reached" in line and "host 127.0.0.1," in line], run.stderr
    assert SECRET not in run.everything() and "part@" not in run.everything()
