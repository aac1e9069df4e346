"""docs/settings.md holds the settings table `target-segmetrics --about --format=markdown` prints.

The generated part (between its markers) is written by scripts/settings_doc.py; a setting added,
renamed or re-described in the code without running it makes this fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import settings_doc  # noqa: E402


def test_settings_page_holds_the_table_about_prints():
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    generated = page.split(settings_doc.START, 1)[1].split(settings_doc.END, 1)[0].strip()
    printed = subprocess.run(
        [str(Path(sys.executable).parent / "target-segmetrics"), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = [line for line in printed.split("## Settings", 1)[1].splitlines() if line.startswith("|")]
    assert generated.splitlines() == table
    assert any(line.startswith("| api_key |") for line in table)


def test_settings_doc_check_fails_on_a_stale_page(tmp_path, monkeypatch):
    stale = tmp_path / "settings.md"
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    stale.write_text(page.replace("| api_key |", "| api_keys |", 1), encoding="utf-8")
    monkeypatch.setattr(settings_doc, "PAGE", stale)
    monkeypatch.setattr(sys, "argv", ["settings_doc.py", "--check"])
    assert settings_doc.main() == 1
    monkeypatch.setattr(sys, "argv", ["settings_doc.py"])
    assert settings_doc.main() == 0
    assert stale.read_text(encoding="utf-8") == page
