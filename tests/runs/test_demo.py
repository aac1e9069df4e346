"""scripts/demo.sh and the sandbox's `show --table`: what a first-time user sees."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from target_segmetrics.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"
KEY = "table-key"
EMAILS = [
    "alice.johnson@example.com",
    "j.doe+newsletter@example.com",
    "li.wei@example.cn",
    "sam@taylor-consulting.co.uk",
    "zoe.muller@example.de",
]


@contextlib.contextmanager
def listening(port: int = 0) -> Iterator[socket.socket | None]:
    """Another program listening on the port (None if someone else already holds it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        yield None
        return
    sock.listen(16)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def run_demo(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEMO)],
        env={**os.environ, "DEMO_PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def column(line: str, text: str) -> int:
    """The screen column where text starts in line."""
    before = line[: line.index(text)]
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in before)


def show(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "target_segmetrics.sandbox.show", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_show_table_prints_one_line_per_contact():
    with Sandbox(api_key=KEY, account_id="acct", integration_ids=("int",)) as sb:
        url = sb.integration_url("int")
        contacts = [
            {
                "contact_id": "1",
                "email": "a@example.com",
                "first_name": "Ann",
                "last_name": "Lee",
                "tags": ["VIP", "Q1"],
            },
            {"contact_id": "2", "email": "b@example.com", "first_name": "伟", "last_name": "李", "utm_source": "ads"},
            {"email": "c@example.com", "status": "inactive"},
        ]
        for body in contacts:
            reply = requests.post(f"{url}/contact", json=body, headers={"Authorization": KEY}, timeout=5)
            assert reply.status_code == 200, reply.text
        shown = show("--url", sb.base_url, "--table")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "account acct, integration int: 3 contacts"
    assert lines[1].split() == ["CONTACT_ID", "EMAIL", "NAME", "STATUS", "UTM_SOURCE", "TAGS"]
    assert lines[2].split() == ["1", "a@example.com", "Ann", "Lee", "active", "VIP,", "Q1"]
    assert lines[3].split() == ["2", "b@example.com", "伟", "李", "active", "ads"]
    assert lines[4].split() == ["c@example.com", "inactive"]
    assert lines[5:] == ["also held: 2 tags"]
    # Columns line up on screen (a wide character takes two columns).
    assert column(lines[1], "EMAIL") == column(lines[2], "a@") == column(lines[3], "b@") == column(lines[4], "c@")
    assert column(lines[1], "STATUS") == column(lines[2], "active") == column(lines[3], "active")
    assert column(lines[1], "STATUS") == column(lines[4], "inactive")
    assert column(lines[1], "UTM_SOURCE") == column(lines[3], "ads")


def test_demo_stops_at_once_when_its_port_is_taken():
    with listening() as other:
        assert other is not None
        port = other.getsockname()[1]
        demo = run_demo(PORT=str(port))
        assert nobody_connected(other), "the demo talked to the program that holds the port"
    assert demo.returncode == 1
    assert f"demo: port {port} is taken by another program; run PORT=<another port> scripts/demo.sh" in demo.stderr
    assert "tap-hubspot" not in demo.stdout  # the target never ran
    assert "Traceback" not in demo.stderr


def test_demo_uses_a_free_port_when_8765_is_taken_and_prints_a_table():
    with listening(8765) as other:
        demo = run_demo()
        if other is not None:
            assert nobody_connected(other), "the demo talked to the program that holds port 8765"
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "demo: port 8765 is taken by another program; using a free port instead" in demo.stdout
    assert "== SegMetrics sandbox on http://127.0.0.1:8765" not in demo.stdout
    held = demo.stdout.split("== What SegMetrics (the sandbox) now holds:\n", 1)[1].splitlines()
    assert held[0] == "account demo, integration demo-int: 6 contacts"
    assert held[1].split() == ["CONTACT_ID", "EMAIL", "NAME", "STATUS", "UTM_SOURCE", "TAGS"]
    assert sorted(line.split()[1] for line in held[2:8] if "@" in line) == EMAILS
    assert any(line.startswith("74254 ") and "Marcus O'Neil" in line for line in held[2:8])  # no email
    assert "Lifecycle: Customer, Lead status: Connected, Source: Paid Social" in demo.stdout
    assert len(demo.stdout.splitlines()) < 20  # a table, not pages of JSON


@pytest.mark.parametrize("args", [["--table", "--requests"], ["--table", "--only", "tags"]])
def test_show_table_refuses_other_views(args):
    shown = show("--url", "http://127.0.0.1:9", *args)
    assert shown.returncode == 2
    assert "--table cannot be combined" in shown.stderr
