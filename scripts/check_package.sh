#!/usr/bin/env bash
# Build the sdist and the wheel as a release would, check their metadata, and install the wheel in a
# fresh virtualenv: `target-segmetrics --about` must run from it. Called by scripts/test.sh.
#   scripts/check_package.sh            with .venv/bin/python (build and twine are installed into it)
#   PY=/path/python scripts/check_package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

"$PY" -m pip install --quiet build twine
"$PY" -m build --outdir "$OUT/dist" . >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
"$PY" -m twine check --strict "$OUT"/dist/*

# What the metadata must say, read from the wheel and the sdist themselves.
"$PY" - "$OUT"/dist/*.whl "$OUT"/dist/*.tar.gz <<'PYTHON'
import email.parser
import sys
import tarfile
import zipfile

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

wheel, sdist = sys.argv[1], sys.argv[2]
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = email.parser.Parser().parsestr(archive.read(meta_name).decode())
    entry_points = archive.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
problems = []
expect = {"Name": project["name"], "Version": project["version"], "Requires-Python": project["requires-python"],
          "Description-Content-Type": "text/markdown"}
for field, value in expect.items():
    if meta.get(field) != value:
        problems.append(f"{field} is {meta.get(field)!r}, not {value!r}")
requires = meta.get_all("Requires-Dist") or []
for dependency in project["dependencies"]:
    if dependency not in requires:
        problems.append(f"Requires-Dist lacks {dependency!r}")
if not meta.get_payload().startswith("# target-segmetrics"):
    problems.append("the long description is not README.md")
for script in project["scripts"]:
    if f"{script} = " not in entry_points:
        problems.append(f"no console script {script!r}")
if not any(n.startswith("target_segmetrics/mapping/") for n in names):
    problems.append("the wheel lacks target_segmetrics/mapping/")
if any(n.startswith(("tests/", ".venv")) for n in names):
    problems.append("the wheel holds tests or a virtualenv")
with tarfile.open(sdist) as archive:
    members = archive.getnames()
if any("/.venv" in m for m in members):
    problems.append("the sdist holds a virtualenv")
for needed in ("pyproject.toml", "README.md", "target_segmetrics/target.py"):
    if not any(m.endswith("/" + needed) for m in members):
        problems.append(f"the sdist lacks {needed}")
if problems:
    sys.exit("package metadata: " + "; ".join(problems))
print(f"package: {wheel.rsplit('/', 1)[1]} and {sdist.rsplit('/', 1)[1]}: metadata checked")
PYTHON

# The wheel installs on its own (its dependencies from the package index) and runs.
"$PY" -m venv "$OUT/venv"
"$OUT/venv/bin/python" -m pip install --quiet "$OUT"/dist/*.whl
"$OUT/venv/bin/target-segmetrics" --about --format=json >"$OUT/about.json"
"$PY" -c 'import json, sys; about = json.load(open(sys.argv[1])); assert "mappings" in about["settings"]["properties"], about; print("package: the wheel installs and target-segmetrics --about runs")' "$OUT/about.json"
