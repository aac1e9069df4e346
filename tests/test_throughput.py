"""Concurrency: the bound, order per object, 429 back-off, STATE checkpoints (functional, not timed)."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time

from helpers import base_config, record, schema, state, target_executable

from target_segmetrics.dispatch import Checkpoints, Dispatcher
from target_segmetrics.sandbox import FaultAction

USERS = schema(
    "users",
    {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "contact_id": {"type": ["string", "null"]},
        "first_name": {"type": "string"},
    },
)


class RandomDelay:
    """Answers after a random delay, so requests sent in parallel finish in a shuffled order."""

    def __init__(self, max_ms: int, seed: int = 1):
        self.rng = random.Random(seed)
        self.max_ms = max_ms
        self.lock = threading.Lock()

    def before(self, ctx):
        with self.lock:
            return FaultAction("delay", delay_ms=self.rng.randint(0, self.max_ms))

    def after(self, ctx, status):
        return None


def test_requests_in_flight_never_exceed_max_concurrency(sandbox, run_target):
    sandbox.set_latency(40)
    messages = [USERS] + [
        record("users", {"id": i, "email": f"u{i}@example.com", "first_name": "U"}) for i in range(160)
    ]
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


class TimedThrottle:
    """Answers the 5th request 429 with Retry-After: 1, and notes when each request arrived."""

    def __init__(self):
        self.arrivals = []
        self.throttled_at = None
        self.lock = threading.Lock()

    def before(self, ctx):
        with self.lock:
            now = time.monotonic()
            self.arrivals.append(now)
            if len(self.arrivals) == 5:
                self.throttled_at = now
                return FaultAction("status", status=429, retry_after=1)
        return None

    def after(self, ctx, status):
        return None


def test_a_429_pauses_every_sender_for_retry_after(sandbox, run_target):
    sandbox.set_latency(20)
    policy = TimedThrottle()
    sandbox.faults = policy
    messages = [USERS] + [
        record("users", {"id": i, "email": f"u{i}@example.com", "first_name": "U"}) for i in range(60)
    ]
    run = run_target(base_config(sandbox, max_concurrency=8), messages)
    assert run.returncode == 0, run.stderr
    assert len(sandbox.contacts()) == 60
    # Requests already on the wire may arrive just after the 429; after that, nobody sends until
    # Retry-After has passed: the whole target slows down instead of each worker hammering on.
    later = [t - policy.throttled_at for t in policy.arrivals if t > policy.throttled_at + 0.1]
    assert later and min(later) >= 0.95
    assert "1 retries" in run.stderr


def test_state_is_checkpointed_mid_run_and_never_ahead_of_what_landed(sandbox, tmp_path):
    sandbox.set_latency(15)
    total = 400
    lines = [USERS]
    for i in range(total):
        lines.append(record("users", {"id": i, "email": f"u{i}@example.com", "first_name": "U"}))
        if (i + 1) % 50 == 0:
            lines.append(state({"done": i + 1}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(sandbox, max_concurrency=4, batch_size_rows=50)))
    proc = subprocess.Popen(
        [target_executable(), "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    feeder = threading.Thread(
        target=lambda: (proc.stdin.write("".join(json.dumps(m) + "\n" for m in lines)), proc.stdin.close())
    )
    feeder.start()
    checked = []
    for line in proc.stdout:
        done = json.loads(line)["done"]
        held = {c["email"] for c in sandbox.contacts()}
        # Every record before this STATE is already held by SegMetrics.
        assert {f"u{i}@example.com" for i in range(done)} <= held
        checked.append((done, sandbox.request_count))
    feeder.join()
    assert proc.wait(timeout=60) == 0
    assert checked[-1][0] == total
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

    for n in range(200):
        key = f"k{n % 5}"
        dispatcher.submit("s", [key], work(key, n, rng.uniform(0, 0.004)), lambda ok: None)
    dispatcher.wait()
    for key, ns in applied.items():
        assert ns == sorted(ns), key
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


class Arrivals:
    def __init__(self):
        self.times = []
        self.lock = threading.Lock()

    def before(self, ctx):
        with self.lock:
            self.times.append(time.monotonic())

    def after(self, ctx, status):
        return None


def test_max_requests_per_second_spaces_the_requests(sandbox, run_target):
    arrivals = Arrivals()
    sandbox.faults = arrivals
    messages = [USERS] + [
        record("users", {"id": i, "email": f"u{i}@example.com", "first_name": "U"}) for i in range(30)
    ]
    run = run_target(base_config(sandbox, max_concurrency=8, max_requests_per_second=20), messages)
    assert run.returncode == 0, run.stderr
    gaps = [b - a for a, b in zip(arrivals.times, arrivals.times[1:], strict=False)]
    assert len(gaps) == 29
    # 20 per second: starts 50 ms apart (a little less for clock and scheduling jitter).
    assert sorted(gaps)[2] >= 0.04
    assert arrivals.times[-1] - arrivals.times[0] >= 29 * 0.045
