"""Concurrency: the bound, order per object, 429 back-off, STATE checkpoints (functional, not timed)."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time

import pytest
from helpers import (
    USERS,
    Arrivals,
    RandomDelay,
    base_config,
    record,
    start_process,
    user_email,
    users,
)

from target_segmetrics.delivery.dispatch import Checkpoints, Dispatcher


def test_requests_in_flight_never_exceed_max_concurrency(sandbox, run_target):
    sandbox.set_latency(40)
    messages = [USERS, *users(0, 160)]
    run = run_target(base_config(sandbox, max_concurrency=8), messages)
    assert run.returncode == 0, run.stderr
    assert len(sandbox.contacts()) == 160
    assert 6 <= sandbox.peak_in_flight <= 8  # parallel, and never more than allowed


def test_records_for_one_contact_land_in_input_order(sandbox, run_target):
    sandbox.faults = RandomDelay(30)
    messages = [USERS]
    for version in range(1, 21):  # 20 versions of 6 contacts, interleaved
        for c in range(6):
            messages.append(
                record(
                    "users", {"id": c, "contact_id": f"c{c}", "email": f"c{c}@example.com", "first_name": f"v{version}"}
                )
            )
    # The email-match rule: a record with only the email touches the same contact.
    messages.append(record("users", {"id": 0, "contact_id": None, "email": "c0@example.com", "first_name": "by email"}))
    run = run_target(base_config(sandbox, max_concurrency=16), messages)
    assert run.returncode == 0, run.stderr
    assert {c["contact_id"]: c["first_name"] for c in sandbox.contacts()} == {
        "c0": "by email",
        **{f"c{c}": "v20" for c in range(1, 6)},
    }
    for c in range(1, 6):  # what SegMetrics received for each contact, in the order it applied it
        seen = [e["body"]["first_name"] for e in sandbox.requests_log() if e["body"].get("contact_id") == f"c{c}"]
        assert seen == [f"v{v}" for v in range(1, 21)]
    assert sandbox.peak_in_flight > 1


def test_a_429_pauses_every_sender_for_retry_after(sandbox, run_target):
    sandbox.set_latency(20)
    policy = Arrivals(throttle_request=5, retry_after=1)
    sandbox.faults = policy
    messages = [USERS, *users(0, 60)]
    run = run_target(base_config(sandbox, max_concurrency=8), messages)
    assert run.returncode == 0, run.stderr
    assert len(sandbox.contacts()) == 60
    # Requests already on the wire may arrive just after the 429; after that, nobody sends until
    # Retry-After has passed: the whole target slows down instead of each worker hammering on.
    later = [t - policy.throttled_at for t in policy.times if t > policy.throttled_at + 0.1]
    assert later and min(later) >= 0.95
    assert "1 retry (1 answered 429)" in run.stderr


# In a separate process: STATE lines are read as the target prints them, while it still sends.
@pytest.mark.slow
def test_state_is_checkpointed_mid_run_and_never_ahead_of_what_landed(sandbox, tmp_path):
    sandbox.set_latency(15)
    total = 400
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(sandbox, max_concurrency=4, batch_size_rows=50)))
    proc = start_process(config, [USERS, *users(0, total, state_every=50)], stderr=subprocess.DEVNULL)
    checked = []
    for line in proc.stdout:
        done = json.loads(line)["done"]
        held = {c["email"] for c in sandbox.contacts()}
        # Every record before this STATE is already held by SegMetrics.
        assert {user_email(i) for i in range(done)} <= held
        checked.append((done, sandbox.request_count))
    assert proc.wait(timeout=60) == 0
    assert checked and checked[-1][0] == total
    mid_run = [done for done, requests in checked if requests < total]
    assert len(mid_run) >= 2, checked  # STATE went out while records were still being sent


# --- the pieces on their own -------------------------------------------------------------------------


def test_dispatcher_orders_per_key_and_overlaps_other_keys():
    dispatcher = Dispatcher(workers=8, window=16)
    applied: dict[str, list[int]] = {}
    lock = threading.Lock()
    rng = random.Random(3)
    in_flight = [0, 0]

    def work(key, n, delay):
        def run():
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            time.sleep(delay)
            with lock:
                in_flight[0] -= 1
                applied.setdefault(key, []).append(n)

        return run

    outcomes = []
    for n in range(200):
        key = f"k{n % 5}"
        dispatcher.submit("s", [key], work(key, n, rng.uniform(0, 0.004)), outcomes.append)
    dispatcher.wait()
    # Every item ran exactly once, and the items of one key in the order they were submitted.
    assert applied == {f"k{k}": list(range(k, 200, 5)) for k in range(5)}
    assert outcomes == [True] * 200
    assert in_flight[1] > 1
    dispatcher.close()


def test_dispatcher_hands_a_worker_failure_to_the_reader():
    dispatcher = Dispatcher(workers=2, window=4)
    outcomes = []
    second_queued = threading.Event()

    def boom():
        second_queued.wait(5)
        raise RuntimeError("SegMetrics said no")

    dispatcher.submit("s", ["a"], boom, outcomes.append)
    dispatcher.submit("s", ["a"], lambda: outcomes.append("ran"), outcomes.append)
    second_queued.set()
    try:
        dispatcher.wait()
    except RuntimeError as exc:
        assert "said no" in str(exc)
    else:
        raise AssertionError("the failure was not raised")
    assert outcomes == [False, False]  # the second was abandoned, not run
    dispatcher.close()


def test_checkpoints_pass_state_only_after_everything_before_it_landed():
    written = []
    checkpoints = Checkpoints(written.append, interval=0, every=1)
    a, b = checkpoints.ticket(), checkpoints.ticket()
    checkpoints.state({"after": 2})
    c = checkpoints.ticket()
    checkpoints.state({"after": 3})
    checkpoints.landed(b, True)
    checkpoints.landed(c, True)
    assert written == []  # record a has not landed yet
    checkpoints.landed(a, True)
    assert written == [{"after": 3}]
    d = checkpoints.ticket()
    checkpoints.state({"after": 4})
    checkpoints.landed(d, False)  # never landed: nothing passes it, ever
    checkpoints.flush()
    assert written == [{"after": 3}]


@pytest.mark.slow
def test_max_requests_per_second_spaces_the_requests(sandbox, run_target):
    rate, count = 20, 80
    arrivals = Arrivals()
    sandbox.faults = arrivals
    run = run_target(base_config(sandbox, max_concurrency=8, max_requests_per_second=rate), [USERS, *users(0, count)])
    assert run.returncode == 0, run.stderr
    times = sorted(arrivals.times)
    assert len(times) == count and len(sandbox.contacts()) == count
    # The target starts request k no sooner than k/rate after the first; each arrives at SegMetrics
    # some time after it starts. Allowing each arrival up to `lag` seconds of delay (loopback and
    # scheduling, generous on a busy 2-core machine) cannot hide a missing limit: unlimited, these
    # 80 requests at 8 in flight arrive within a fraction of a second, not over ~4 s.
    lag = 0.3
    assert times[-1] - times[0] >= (count - 1) / rate - lag
    # No burst anywhere: the arrivals in any window of w seconds started within w + lag seconds.
    for window in (0.5, 1.0, 2.0):
        most = max(sum(1 for t in times[i:] if t - start <= window) for i, start in enumerate(times))
        assert most <= (window + lag) * rate + 1, (window, most)


# Found while writing the test above: a fractional rate (2.5 requests/s) stops the run with
# "Unexpected error (TypeError): unsupported operand type(s) for /: 'float' and 'decimal.Decimal'"
# (the SDK reads config numbers as Decimal; the client divides 1.0 by it). Reported, not fixed here.
def test_a_fractional_max_requests_per_second_is_honoured(sandbox, run_target):
    config = base_config(sandbox, max_requests_per_second=2.5)
    run = run_target(config, [USERS, *users(0, 3, state_every=3)])
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.states == [{"done": 3}]
    assert len(sandbox.contacts()) == 3
