"""What a new user relies on beyond the code: the store kept out of git, the install lines and the
Meltano definition agreeing, and the documented limits of tap-hubspot holding true."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from helpers import FIXTURES, base_config, record, schema

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "README.md"]
USERS = schema("users", {"id": {"type": "integer"}, "email": {"type": "string"}})


def test_the_default_store_folder_stays_out_of_the_projects_git(sandbox, run_target, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / "meltano.yml").write_text("project_id: p\n")
    store = project / ".target-segmetrics" / "sent.sqlite3"
    config = base_config(sandbox, state_db_path=str(store), mappings={"users": {"fields": {"email": "email"}}})
    run = run_target(config, [USERS, record("users", {"id": 1, "email": "a@example.com"})])
    assert run.returncode == 0, run.stderr
    assert store.exists()  # the store is there ...
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout.splitlines() == ["?? meltano.yml"]  # ... and git does not offer to commit it
    # A store somewhere else chosen on purpose gets no .gitignore written next to it.
    elsewhere = tmp_path / "kept" / "store.sqlite3"
    config = base_config(sandbox, state_db_path=str(elsewhere), mappings={"users": {"fields": {"email": "email"}}})
    assert run_target(config, [USERS, record("users", {"id": 2, "email": "b@example.com"})]).returncode == 0
    assert elsewhere.exists() and not (elsewhere.parent / ".gitignore").exists()


def test_the_readme_tells_to_ignore_the_store_and_the_clone():
    readme = (ROOT / "README.md").read_text()
    assert "add `.target-segmetrics/` to `.gitignore`" in readme
    assert (
        "then add `target-segmetrics/` to\n`.gitignore`" in readme
        or "add `target-segmetrics/` to `.gitignore`" in readme
    )


def test_no_page_holds_a_placeholder_for_the_repository():
    for path in [*PAGES, ROOT / "meltano-hub" / "target-segmetrics.yml", ROOT / "scripts" / "plugin_definition.py"]:
        text = path.read_text()
        assert not re.search(r"<(your-)?org>", text), path


def test_the_meltano_definition_installs_what_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    hub = yaml.safe_load((ROOT / "meltano-hub" / "target-segmetrics.yml").read_text())
    said = re.search(r"`meltano add` installs the target from the clone \(`pip_url: ([^`]+)`", readme)
    assert said, "the README no longer says what pip_url installs"
    assert hub["pip_url"] == said.group(1) == "-e ./target-segmetrics"
    # The loader line of the README adds exactly this file, from the clone.
    assert "--from-ref target-segmetrics/meltano-hub/target-segmetrics.yml" in readme


def test_hard_delete_never_fires_with_tap_hubspot_and_the_docs_say_so():
    recorded = sorted((FIXTURES / "hubspot").glob("*.singer"))
    assert {p.name.split("_")[0] for p in recorded} >= {"meltanolabs", "singerio"}, recorded
    for path in recorded:  # what both variants' real code emitted: no record is ever marked deleted
        assert "_sdc_deleted_at" not in path.read_text(), path
    for page in (ROOT / "README.md", ROOT / "docs" / "hubspot.md"):
        text = " ".join(page.read_text().split())
        assert "`hard_delete` never fires with tap-hubspot" in text, page
        assert "neither variant emits `_sdc_deleted_at`" in text, page


def test_the_test_script_says_it_installs_postgresql_and_builds_the_package():
    script = (ROOT / "scripts" / "test.sh").read_text()
    head = " ".join(line.lstrip("# ") for line in script.splitlines()[1:12])
    assert "apt-get install postgresql" in head and "Needs python3 (3.10+), pip and git" in head
    assert "scripts/check_package.sh" in script.splitlines()[-1]
    check = (ROOT / "scripts" / "check_package.sh").read_text()
    assert "-m build" in check and "twine check --strict" in check and "--about" in check
