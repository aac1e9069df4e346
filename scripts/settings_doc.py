"""Write the generated part of docs/settings.md from `target-segmetrics --about --format=markdown`.

    .venv/bin/python scripts/settings_doc.py            # rewrite the part between the markers
    .venv/bin/python scripts/settings_doc.py --check    # exit 1 if it is out of date

The part between ``<!-- settings-from-about -->`` and ``<!-- end settings-from-about -->`` is the
settings table `--about --format=markdown` prints, as it prints it; tests/runs/test_settings_doc.py
fails when it drifts from the code. The rest of the page is written by hand.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "settings.md"
START = "<!-- settings-from-about: written by scripts/settings_doc.py, do not edit -->"
END = "<!-- end settings-from-about -->"


def about_table() -> str:
    """The settings table of `--about --format=markdown`, header row to the last setting."""
    executable = shutil.which("target-segmetrics", path=str(Path(sys.executable).parent)) or "target-segmetrics"
    markdown = subprocess.run(  # noqa: S603 (this environment's own console script)
        [executable, "--about", "--format=markdown"], capture_output=True, text=True, check=True
    ).stdout
    section = markdown.split("## Settings", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return "\n".join(rows) + "\n"


def rendered(page: str) -> str:
    before, rest = page.split(START, 1)
    _old, after = rest.split(END, 1)
    return f"{before}{START}\n\n{about_table()}\n{END}{after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/settings.md is out of date")
    args = parser.parse_args()
    page = PAGE.read_text(encoding="utf-8")
    new = rendered(page)
    if args.check:
        if new != page:
            print(f"{PAGE} is out of date: run scripts/settings_doc.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
