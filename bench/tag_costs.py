"""The hubspot preset's cost per contact, in requests and time, for each tap-hubspot variant's shape.

Synthetic contacts made from each variant's real record (tests/fixtures/hubspot: MeltanoLabs, singer-io
4.x with its ``list_memberships`` stream, singer-io 2.x/3.x with lists inline), through the one config of
docs/hubspot.md with ``skip_unchanged``: a first run (store empty), an incremental run in which every contact
changed but no tag did, one in which a tenth moved to another lifecycle stage, and one in which 1% of a
populated store's contacts changed (its time against the first run's).
"""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "hubspot"
STAGES = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"]
SOURCES = ["ORGANIC_SEARCH", "PAID_SOCIAL", "EMAIL_MARKETING", "DIRECT_TRAFFIC", "REFERRALS", "OFFLINE"]
VARIANTS = {"meltanolabs": "MeltanoLabs", "singerio": "singer-io 4.x", "singerio_legacy": "singer-io 2.x/3.x"}


def _template(variant: str) -> tuple[str, dict, str | None]:
    """The variant's contacts SCHEMA line, its first contact record, and its list_memberships SCHEMA line."""
    lines = (FIXTURES / f"{variant}_contacts.singer").read_text().splitlines()
    schema = next(line for line in lines if '"SCHEMA"' in line)
    record = next(json.loads(line)["record"] for line in lines if '"RECORD"' in line)
    if variant != "singerio":
        return schema, record, None
    lines = (FIXTURES / f"{variant}_contact_lists.singer").read_text().splitlines()
    # The tap syncs each list, then its memberships: the list's SCHEMA and RECORD (list 12), the memberships' SCHEMA.
    lists = [line for line in lines if '"contact_lists"' in line and ('"SCHEMA"' in line or '"listId": "12"' in line)]
    members = next(line for line in lines if '"list_memberships"' in line and '"SCHEMA"' in line)
    return schema, record, "\n".join([*lists[:2], members])


def _set(record: dict, name: str, value: t.Any) -> None:
    """A property where the variant keeps it (singer-io's top-level copy, 2.x/3.x's {"value"} wrapper)."""
    wrapped = isinstance(record["properties"].get(name), dict)
    record["properties"][name] = {"value": value} if wrapped else value
    if f"property_{name}" in record:
        record[f"property_{name}"] = {"value": value} if isinstance(record[f"property_{name}"], dict) else value


def write_contacts(
    path: Path,
    variant: str,
    count: int,
    *,
    title: str = "Engineer",
    base_title: str = "Engineer",
    changed_every: int = 1,
    moved_every: int = 0,
    memberships: bool = True,
) -> int:
    """``count`` contacts of the variant (the ``changed_every``-th ones with job title ``title``, the
    others ``base_title``; every ``moved_every``-th one a stage further on); singer-io 4.x: every third
    contact also joined a list. Returns the number of records written."""
    schema, template, members = _template(variant)
    key = "vid" if "vid" in template else "id"
    written = 0
    events = []
    with path.open("w") as out:
        out.write(schema + "\n")
        for i in range(count):
            record = copy.deepcopy(template)
            cid = 100000 + i
            record[key] = cid if key == "vid" else str(cid)
            record.pop("list-memberships", None)
            record.pop("form-submissions", None)
            stage = STAGES[(i + (1 if moved_every and i % moved_every == 0 else 0)) % len(STAGES)]
            for name, value in (
                ("email", f"contact{i}@example.com"),
                ("lifecyclestage", stage),
                ("hs_lead_status", "NEW" if i % 2 else "OPEN"),
                ("hs_analytics_source", SOURCES[i % len(SOURCES)]),
                ("jobtitle", title if i % changed_every == 0 else base_title),
            ):
                _set(record, name, value)
            out.write(json.dumps({"type": "RECORD", "stream": "contacts", "record": record}) + "\n")
            written += 1
            if memberships and members and i % 3 == 0:
                events.append({"recordId": str(cid), "listId": "12", "membershipTimestamp": "2024-02-14T16:06:12Z"})
            if (i + 1) % 1000 == 0:
                out.write(json.dumps({"type": "STATE", "value": {"contacts": i + 1}}) + "\n")
        if events and members:
            out.write(members + "\n")
            for event in events:
                out.write(json.dumps({"type": "RECORD", "stream": "list_memberships", "record": event}) + "\n")
                written += 1
    return written


def tag_costs(run_config: t.Callable[..., dict], config: t.Callable[..., dict], work: Path, n: int) -> list[dict]:
    """Per variant: a first run, three incremental runs; each one's requests, per record and per contact."""
    mappings = json.loads(
        (ROOT / "docs" / "hubspot.md")
        .read_text()
        .split("**The one config to write:**")[1]
        .split("```json\n")[1]
        .split("\n```")[0]
    )["mappings"]
    results = []
    for variant, label in VARIANTS.items():
        store = work / f"tags-{variant}.sqlite3"
        cfg = config(mappings, skip_unchanged=True, state_db_path=str(store))
        runs = [
            ("first run (store empty)", {}, False),
            ("every contact changed, no tag did", {"title": "Principal Engineer"}, True),
            ("a tenth moved to another stage", {"title": "Principal Engineer", "moved_every": 10}, True),
            (
                "1% changed",
                {"title": "Staff", "base_title": "Principal Engineer", "changed_every": 100, "moved_every": 10},
                True,
            ),
        ]
        for name, options, keep in runs:
            path = work / f"tags-{variant}-{len(results)}.singer"
            records = write_contacts(path, variant, n, memberships=not options, **options)
            if variant == "meltanolabs" and not options:  # the tap's properties stream (lifecycle labels)
                path.write_text(path.read_text() + (FIXTURES / "meltanolabs_properties.singer").read_text())
            result = run_config(cfg, path, work / f"config-tags-{variant}.json", reset=not keep)
            changed = n if name.startswith(("first", "every")) else n // 10 if "tenth" in name else n // 100
            results.append(
                {
                    "variant": label,
                    "run": name,
                    "records": records,
                    "contacts": n,
                    "changed": changed,
                    "requests": result["requests"],
                    "seconds": result["wall"],
                    "cpu": result["cpu"],
                    "result": result,
                }
            )
    return results
