"""The store in PostgreSQL (state_db_url) next to the SQLite file: two runs at once, an unreachable
database, a URL that cannot work, and the password that never shows. Against a real PostgreSQL server
the suite starts on 127.0.0.1 (conftest.py: postgres_server)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading

import pytest
import sqlalchemy as sa
from helpers import base_config, record, schema
from pg_server import _free_port

from target_segmetrics.store import SCHEMA_VERSION, Store, StoreUnavailableError

PASSWORD = "pw-Secr3t-9f2c"  # trust authentication on the test server: accepted, never checked
USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})
MAPPING = {"users": {"fields": {"contact_id": {"path": "id", "transform": "string"}, "email": "email"}}}
LOGGER = logging.getLogger("test-store")


def with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def open_store(store_config: dict, scope: str = "dest") -> Store:
    if "state_db_url" in store_config:
        return Store(":unused:", scope, LOGGER, url=store_config["state_db_url"])
    return Store(store_config["state_db_path"], scope, LOGGER)


RUNS, OBJECTS = 2, 300


def test_two_runs_at_once_lose_nothing(store_config):
    """Two runs (each its own store, as two processes would be) park, unpark and remember at once,
    over the same objects half of the time: afterwards everything each left is there, once."""
    stores = [open_store(store_config) for _ in range(RUNS)]
    start = threading.Barrier(RUNS)
    failures: list[BaseException] = []

    def run(n: int, store: Store) -> None:
        try:
            start.wait()
            for i in range(OBJECTS):
                version = store.park("deals", f"r{n}-{i}", json.dumps({"run": n, "i": i}), "contact")
                store.park("deals", f"shared-{i}", json.dumps({"run": n, "i": i}), "contact")  # both runs
                store.remember("contacts", f"r{n}-{i}", f"r{n}-{i}@example.com", f"digest-{n}-{i}")
                if i % 3 == 0:
                    store.unpark("deals", f"r{n}-{i}", version)
                if i % 50 == 0:
                    store.commit()
            store.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures

    check = open_store(store_config)
    try:
        parked = [row for page in check.parked() for row in page]
        objects = [obj for _, obj, *_ in parked]
        assert len(objects) == len(set(objects))  # one row per object, never two
        expected = {f"r{n}-{i}" for n in range(RUNS) for i in range(OBJECTS) if i % 3} | {
            f"shared-{i}" for i in range(OBJECTS)
        }
        assert set(objects) == expected
        for n in range(RUNS):
            mine = [obj for obj in objects if obj.startswith(f"r{n}-")]
            assert mine == sorted(mine, key=lambda o: int(o.split("-")[1]))  # each run's in its order
        assert all(check.unchanged("contacts", f"r{n}-{i}", f"digest-{n}-{i}") for n in range(RUNS) for i in (0, 299))
    finally:
        check.close()


def test_the_schema_version_is_recorded_and_a_newer_store_is_not_touched(sandbox, run_target, tmp_path, store_config):
    store = open_store(store_config)
    store.close()
    if "state_db_url" in store_config:
        engine = sa.create_engine(store_config["state_db_url"].replace("postgresql://", "postgresql+psycopg://"))
    else:
        engine = sa.create_engine(f"sqlite:///{store_config['state_db_path']}")
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalar_one() == SCHEMA_VERSION
        conn.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    engine.dispose()
    run = run_target(base_config(sandbox, mappings=MAPPING, **store_config), [USERS, record("users", {"id": 1})])
    assert run.returncode == 1
    assert [line for line in run.errors if "written by a newer target-segmetrics" in line]
    assert sandbox.request_count == 0


def test_an_unreachable_database_stops_before_any_request_in_one_line(sandbox, run_target, postgres_server):
    port = _free_port()  # nothing listens there
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/segmetrics"
    run = run_target(base_config(sandbox, mappings=MAPPING, state_db_url=url), [USERS, record("users", {"id": 1})])
    assert run.returncode == 1
    assert sandbox.request_count == 0
    assert len(run.errors) == 1, run.stderr
    line = run.errors[0]
    assert "cannot be reached" in line and "host 127.0.0.1" in line and f"port {port}" in line
    assert "database segmetrics" in line and "Connection refused" in line
    assert PASSWORD not in run.everything()
    assert "Traceback" not in run.stderr
    assert run.states == []

    missing = with_password(postgres_server.url("no_such_database"))
    run = run_target(base_config(sandbox, mappings=MAPPING, state_db_url=missing), [USERS, record("users", {"id": 1})])
    assert run.returncode == 1 and sandbox.request_count == 0
    assert [line for line in run.errors if 'database "no_such_database" does not exist' in line], run.stderr
    assert PASSWORD not in run.everything()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"mysql://root:{PASSWORD}@127.0.0.1/db", "state_db_url has an unknown scheme 'mysql'"),
        (f"postgresql://root:{PASSWORD}@127.0.0.1:5432", "names no database"),
        (f"not a url {PASSWORD}", "state_db_url is not a database URL"),
    ],
)
def test_a_state_db_url_that_cannot_work_is_a_config_error(sandbox, run_target, url, message):
    run = run_target(base_config(sandbox, mappings=MAPPING, state_db_url=url), [USERS, record("users", {"id": 1})])
    assert run.returncode == 1
    assert [line for line in run.errors if message in line], run.stderr
    assert sandbox.request_count == 0
    assert PASSWORD not in run.everything()


def test_the_password_never_shows_in_logs_or_the_summary(sandbox, run_target, tmp_path, postgres_url):
    from helpers import LOOKUP_DEALS as DEALS
    from helpers import LOOKUP_MAPPINGS as MAPPINGS

    summary = tmp_path / "summary.json"
    config = base_config(
        sandbox, mappings=MAPPINGS, state_db_url=with_password(postgres_url), summary_path=str(summary)
    )
    run = run_target({**config, "skip_unchanged": True}, DEALS)  # no contacts yet: the deals are parked
    assert run.returncode == 0, run.stderr
    assert "2 records parked" in run.stderr
    assert "kept in postgresql+psycopg://postgres:***@127.0.0.1" in run.stderr
    assert PASSWORD not in run.everything() and PASSWORD not in summary.read_text()


def test_a_database_lost_during_the_run_stops_it_with_one_line(postgres_url):
    """The connections are cut (a restart, a failover): storing a parked record fails loudly, never silently."""
    store = Store(":unused:", "dest", LOGGER, url=with_password(postgres_url))
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        cut = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    engine.dispose()
    assert cut >= 1
    store.park("deals", "d1", "{}", "contact")
    with pytest.raises(StoreUnavailableError) as failed:
        store.commit()  # before the STATE that passes the parked record
    message = str(failed.value)
    assert message.startswith("The store postgresql+psycopg://postgres:***@127.0.0.1") and "stopped" in message
    assert PASSWORD not in message and "\n" not in message
    with contextlib.suppress(StoreUnavailableError):
        store.close()


def test_a_record_is_known_as_it_came_until_reading_that_fails_and_then_it_is_mapped_again(store_config):
    made = {"transcript": "[]", "kind": "contact", "object": "1", "identities": "[]", "made": "d1"}
    store = open_store(store_config)
    store.remember("contact", "1", None, "d1")
    store.remember_record("users", "id=1", "r1", made)
    store.close()
    store = open_store(store_config)
    try:
        assert store.recognised("users", "id=1", "r1") == ("[]", "[]")
        assert store.recognised("users", "id=1", "r2") is None  # it came otherwise: mapped
        if "state_db_url" in store_config:
            engine = sa.create_engine(store_config["state_db_url"].replace("postgresql://", "postgresql+psycopg://"))
        else:
            engine = sa.create_engine(f"sqlite:///{store_config['state_db_path']}")
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE record_digests")
        engine.dispose()
        assert store.recognised("users", "id=1", "r1") is None  # when in doubt, map it: never an error
        assert store.gone is None
    finally:
        store.close()
