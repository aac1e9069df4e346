"""What the tests share: Singer message and record builders, sandbox fault policies, and the two ways
of running the target (in this process through its click command, or as the installed console script).

Fixtures live in conftest.py; everything here is plain functions and classes the tests import.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from target_segmetrics.sandbox import FaultAction, Faults, Sandbox
from target_segmetrics.target import TargetSegMetrics

DATA = Path(__file__).parent / "data"
FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def readme_hubspot_mappings() -> dict[str, dict]:
    """docs/hubspot.md's "one config to write" for the hubspot preset (its ``mappings``), as a user copies it."""
    text = (DOCS / "hubspot.md").read_text(encoding="utf-8")
    after = text[text.index("**The one config to write:**") :]
    start = after.index("```json\n") + len("```json\n")
    block = after[start : after.index("\n```", start)]
    return json.loads(block)["mappings"]


def readme_block(marker: str) -> str:
    """The ```bash block that follows README.md's ``<!-- <marker>`` line, as printed."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = f"<!-- {marker}"
    assert start in readme, f"README.md has no {start} --> block"
    after = readme.split(start, 1)[1]
    found = re.search(r"```bash\n(.*?)```", after, flags=re.S)
    assert found, f"no ```bash block after README.md's {marker} marker"
    assert after[: found.start()].count("\n") <= 1, f"the ```bash block must follow the {marker} marker line directly"
    return found.group(1)


API_KEY = "sk-test-4f1c9a7be2d3"  # a distinctive key, so tests can prove it never leaks
ACCOUNT = "acct1"
INTEGRATION = "int1"


# --- Singer messages ------------------------------------------------------------------------------


def schema(stream: str, properties: dict, key_properties=("id",)) -> dict:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": list(key_properties),
    }


def record(stream: str, data: dict) -> dict:
    return {"type": "RECORD", "stream": stream, "record": data}


def state(value: dict) -> dict:
    return {"type": "STATE", "value": value}


def singer_text(messages: Iterable[dict]) -> str:
    return "".join(json.dumps(message) + "\n" for message in messages)


# --- contact records: one "users" stream ------------------------------------------------------------

USERS = schema(
    "users",
    {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "contact_id": {"type": ["string", "null"]},
        "first_name": {"type": "string"},
        "plan": {"type": "string"},
    },
)
PLANS = ("free", "pro", "team")


def user_email(i: int) -> str:
    return f"user{i}@example.com"


def user(i: int, **fields) -> dict:
    """A RECORD of the users stream: id ``i``, email ``user{i}@example.com``, plus ``fields``."""
    return record("users", {"id": i, "email": user_email(i), **fields})


def planned_user(i: int) -> dict:
    """A user with a first name and a plan (free/pro/team in turn), for mappings that tag by plan."""
    return user(i, first_name=f"First{i}", plan=PLANS[i % 3])


def users(start: int, stop: int, *, state_every: int | None = None, make: Callable[[int], dict] = user) -> list[dict]:
    """RECORDs ``make(i)`` for ``start <= i < stop``; with ``state_every``, a STATE ``{"done": i + 1}``
    after each record whose ``i + 1`` is a multiple of it (no SCHEMA: put ``USERS`` first)."""
    messages = []
    for i in range(start, stop):
        messages.append(make(i))
        if state_every and (i + 1) % state_every == 0:
            messages.append(state({"done": i + 1}))
    return messages


# --- sandbox fault policies (``sandbox.faults = ...``) ------------------------------------------------


def scripted(*steps) -> Faults:
    """Faults that answer the next requests as scripted (503, 429, "drop", "lost", "ok", ...)."""
    faults = Faults()
    faults.script(*steps)
    return faults


class Policy:
    """A fault policy that lets every request through; subclasses change ``before``."""

    def before(self, ctx):
        return None

    def after(self, ctx, status):
        return None


class RandomDelay(Policy):
    """Answers after a random delay, so requests sent in parallel finish in a shuffled order."""

    def __init__(self, max_ms: int, seed: int = 1):
        self.rng = random.Random(seed)
        self.max_ms = max_ms
        self.lock = threading.Lock()

    def before(self, ctx):
        with self.lock:
            return FaultAction("delay", delay_ms=self.rng.randint(0, self.max_ms))


class RefuseEmail(Policy):
    """Answers 400 to every request for one email, as SegMetrics would to bad data."""

    def __init__(self, email: str):
        self.email = email

    def before(self, ctx):
        if isinstance(ctx.body, dict) and ctx.body.get("email") == self.email:
            return FaultAction("status", status=400)
        return None


class RefuseFirst(Policy):
    """Answers 400 to the first ``count`` requests, then lets everything through."""

    def __init__(self, count: int = 1):
        self.left = count
        self.lock = threading.Lock()

    def before(self, ctx):
        with self.lock:
            if self.left > 0:
                self.left -= 1
                return FaultAction("status", status=400)
        return None


class Arrivals(Policy):
    """Notes when each request arrived (monotonic seconds); with ``throttle_request=n``, answers the
    n-th request 429 with ``Retry-After: retry_after`` and notes when."""

    def __init__(self, throttle_request: int | None = None, retry_after: float = 1):
        self.times: list[float] = []
        self.throttle_request = throttle_request
        self.retry_after = retry_after
        self.throttled_at: float | None = None
        self.lock = threading.Lock()

    def before(self, ctx):
        with self.lock:
            now = time.monotonic()
            self.times.append(now)
            if len(self.times) == self.throttle_request:
                self.throttled_at = now
                return FaultAction("status", status=429, retry_after=self.retry_after)
        return None


# --- what a run printed -------------------------------------------------------------------------------


@dataclass
class Run:
    """What one run of the target printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[dict]:
        """The STATE values printed on stdout, in order."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "| WARNING" in line]

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "| ERROR" in line or "| CRITICAL" in line]

    def everything(self) -> str:
        return self.stdout + self.stderr


def base_config(sandbox: Sandbox, **overrides) -> dict:
    config = {
        "api_key": API_KEY,
        "account_id": ACCOUNT,
        "integration_id": INTEGRATION,
        "api_url": sandbox.base_url,
        "max_retries": 2,
        "request_timeout": 5,
        # The store is on by default: each config gets its own (a test that needs two runs to share
        # one passes state_db_path itself); never the repository's .target-segmetrics/.
        "state_db_path": str(Path(tempfile.mkdtemp(prefix="segmetrics-store-")) / "store.sqlite3"),
    }
    config.update(overrides)
    return config


# --- running the target as a separate process (the installed console script) ------------------------


def target_executable() -> str:
    """The installed console script (next to this interpreter), as a user would run it."""
    candidate = Path(sys.executable).parent / "target-segmetrics"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("target-segmetrics")
    if not found:
        pytest.fail("target-segmetrics is not installed: run `pip install -e .[dev]` first")
    return found


def run_process(config_path: Path, text: str, *, timeout: float) -> Run:
    """The console script with ``--config``, the Singer input on stdin."""
    proc = subprocess.run(
        [target_executable(), "--config", str(config_path)],
        input=text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def start_process(config_path: Path, messages: list[dict], *, stderr: int = subprocess.PIPE) -> subprocess.Popen:
    """Start the console script and feed it ``messages`` from a thread (so the test can read STATE
    lines as they come, or signal the process mid-run)."""
    proc = subprocess.Popen(
        [target_executable(), "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )

    def feed():
        try:
            proc.stdin.write(singer_text(messages))
            proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the target was stopped

    threading.Thread(target=feed, name="test-feeder", daemon=True).start()
    return proc


def read_states_until(proc: subprocess.Popen, enough: int) -> list[dict]:
    """The STATE lines a running target prints, until one says ``{"done": n}`` with n >= enough."""
    states = []
    for line in proc.stdout:
        states.append(json.loads(line))
        if states[-1]["done"] >= enough:
            break
    return states


# --- running the target in this process (its click command, as the console script calls it) ---------

THREADS_GONE_SECONDS = 15.0
"""How long an in-process run's threads may take to end after the command returned (the console
script's interpreter would join them at exit)."""
# Loggers of the test's own servers (the sandbox runs in this process): a separate process would not
# print them, so they are not part of what the target printed.
TEST_SERVER_LOGGERS = ("aiohttp", "asyncio", "target_segmetrics.sandbox")


class AbandonedThreadsError(BaseException):
    """The target called os._exit (it abandons running requests): that cannot happen in-process."""


class _FromTestServers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(TEST_SERVER_LOGGERS)


class _GlobalState:
    """What the CLI changes in the interpreter, to be put back after an in-process run: the root
    logger's handlers and level, every logger's level, signal handlers, the excepthook."""

    def __init__(self) -> None:
        manager = logging.Logger.manager
        self.loggers = {
            name: (lg.level, list(lg.handlers), lg.propagate, lg.disabled)
            for name, lg in manager.loggerDict.items()
            if isinstance(lg, logging.Logger)
        }
        root = logging.getLogger()
        self.root = (root.level, list(root.handlers))
        self.signals = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        self.excepthook = sys.excepthook

    def restore(self) -> None:
        logging.captureWarnings(False)
        root = logging.getLogger()
        for handler in root.handlers[:]:
            if handler not in self.root[1]:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(self.root[0])
        for name, (level, handlers, propagate, disabled) in self.loggers.items():
            lg = logging.getLogger(name)
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
        for signum, handler in self.signals.items():
            signal.signal(signum, handler)
        sys.excepthook = self.excepthook


def _exit_code(exc: SystemExit, stderr: io.StringIO) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=stderr)  # as the interpreter does with sys.exit("message")
    return 1


def run_in_process(config_path: Path, input_path: Path, *, timeout: float) -> Run:
    """``target-segmetrics --config FILE --input FILE`` through ``TargetSegMetrics.cli`` in this process.

    stdout (STATE lines) and stderr (the SDK's console log handler, set up when ``cli`` is built) go
    to buffers. Afterwards every thread the run started must end, as at interpreter exit, and the
    interpreter's logging, signal and excepthook state is put back.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("run the target in the main thread, as the console script does")
    before = set(threading.enumerate())
    out, err = io.StringIO(), io.StringIO()
    saved = _GlobalState()
    real_exit = os._exit

    def refuse_exit(code: int) -> None:
        raise AbandonedThreadsError(code)

    code = 0
    faulthandler.dump_traceback_later(timeout, exit=True)  # a hung run ends the session, loudly
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as PYTHONWARNINGS=ignore for the process
            os._exit = refuse_exit
            try:
                command = TargetSegMetrics.cli  # adds the SDK's stderr log handler (to ``err``)
                for handler in logging.getLogger().handlers:
                    if handler not in saved.root[1]:
                        handler.addFilter(_FromTestServers())
                command.main(
                    ["--config", str(config_path), "--input", str(input_path)],
                    prog_name="target-segmetrics",
                    standalone_mode=True,
                )
            except SystemExit as exc:
                code = _exit_code(exc, err)
            except AbandonedThreadsError:
                pytest.fail(
                    "the target called os._exit (requests still running after a stop): "
                    "this test needs run_target_process\n" + err.getvalue()[-3000:]
                )
            except BaseException:  # what the interpreter does with an uncaught exception
                sys.excepthook(*sys.exc_info())
                code = 1
            finally:
                os._exit = real_exit
    finally:
        faulthandler.cancel_dump_traceback_later()
        saved.restore()
    _wait_for_threads_started_after(before)
    return Run(code, out.getvalue(), err.getvalue())


def _wait_for_threads_started_after(before: set[threading.Thread]) -> None:
    deadline = time.monotonic() + THREADS_GONE_SECONDS
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    if left:
        pytest.fail(f"an in-process run left threads running {THREADS_GONE_SECONDS}s after it ended: {left}")


# --- what SegMetrics holds, read the way several test modules compare it ---------------------------


def held(sandbox) -> dict[str, dict]:
    out = {}
    for contact in sandbox.contacts():
        tags = sorted(tag["name"] for tag in contact["tags"])
        out[str(contact["contact_id"])] = {k: v for k, v in contact.items() if k != "seq"} | {"tags": tags}
    return out


def invoices(sandbox) -> dict[str, dict]:
    return {
        str(i["id"]): {
            "contact_id": str(i["contact_id"]),
            "amount": i["amount"],
            "items": [(item["name"], str(item["product_id"]), item["amount"]) for item in i["items"]],
        }
        for i in sandbox.invoices()
    }


def rejected(path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {k["key"]: " ".join(k["reasons"]) for k in map(json.loads, path.read_text().splitlines())}


# --- shared inputs --------------------------------------------------------------------------------

SUBSCRIPTION_CHANGES = schema(
    "subscription_changes",
    {
        "timestamp": {"type": ["null", "string"]},
        "portalId": {"type": ["null", "integer"]},
        "recipient": {"type": ["null", "string"]},
        "changes": {"type": ["null", "array"], "items": {"type": ["null", "object"]}},
    },
    key_properties=("timestamp", "portalId", "recipient"),
)


# Deals whose contact comes from the deal_contact_associations stream (MeltanoLabs), mapped by hand.
LOOKUP_DEALS = FIXTURES / "hubspot" / "meltanolabs_deals.singer"
LOOKUP_MAPPINGS = {
    "contacts": {"preset": "hubspot"},
    "deal_contact_associations": {"lookup": {"key": "from_id"}},
    "deals": {  # a whole entry of one's own (the hubspot preset does this too: test_hubspot_preset.py)
        "object": "invoice",
        "when": "properties.hs_is_closed_won",
        "fields": {
            "id": "id",
            "contact_id": [
                {"path": "associations.associatedVids.0", "transform": "string"},
                {"lookup": "deal_contact_associations", "key": "id", "field": "to_id"},
            ],
            "amount": {"path": "properties.amount", "transform": "cents"},
            "paid": {"path": "properties.amount", "transform": "cents"},
            "date_created": "properties.closedate",
        },
        "items": {
            "fields": {
                "name": "properties.dealname",
                "product_id": {"value": "deal"},
                "amount": {"path": "properties.amount", "transform": "cents"},
            }
        },
    },
}


def summary_block(run) -> list[str]:
    """The summary's lines: its first line (with the log prefix) and the indented lines after it."""
    lines = run.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "Run summary (" in line)
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block
