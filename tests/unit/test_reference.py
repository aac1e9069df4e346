"""docs/reference/mapping.md against the grammar the target parses: every key the parser accepts is
in its table and every key in a table is accepted; the docs' example configs load."""

from __future__ import annotations

import json
import re

import pytest
from helpers import ROOT

from target_segmetrics.config.settings import load
from target_segmetrics.mapping.compiler import ENTRY_KEYS, ITEMS_KEYS, TAG_OBJECT_KEYS
from target_segmetrics.mapping.presets import OPTION_CHECKS, PRESETS, as_preset
from target_segmetrics.mapping.sources import PREDICATE_KEYS, RENAMED, SOURCE_KEYS, TRANSFORMS, compile_source

REFERENCE = ROOT / "docs" / "reference" / "mapping.md"


def table(heading: str) -> list[str]:
    """The names in the first column of the table under ``heading`` (a backticked name per row)."""
    text = REFERENCE.read_text(encoding="utf-8")
    section = re.split(r"^#+ ", text.split(f"\n{heading}\n", 1)[1], maxsplit=1, flags=re.M)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


@pytest.mark.parametrize(
    ("heading", "grammar"),
    [
        ("## Entry keys", ENTRY_KEYS),
        ("### Items", ITEMS_KEYS),
        ("### Tag objects", TAG_OBJECT_KEYS),
        ("## Sources", SOURCE_KEYS),
        ("## Predicates", PREDICATE_KEYS),
        ("## Preset options", OPTION_CHECKS),
    ],
)
def test_each_reference_table_lists_exactly_the_keys_the_parser_accepts(heading, grammar):
    listed = table(heading)
    assert len(listed) == len(set(listed)), f"{heading}: a key listed twice"
    assert set(listed) == set(grammar), heading
    if heading == "## Sources":
        assert listed == list(SOURCE_KEYS), "the Sources table is in the order the steps apply"


def test_the_transforms_table_lists_every_transform_and_each_listed_one_works():
    listed = table("## Transforms")
    assert set(listed) == {*TRANSFORMS, "url_param:<name>", "date:<format>", "cents:<currency>"}
    arguments = {"<name>": "utm_source", "<format>": "%m/%d/%Y", "<currency>": "JPY"}
    for name in listed:
        written = name
        for placeholder, argument in arguments.items():
            written = written.replace(placeholder, argument)
        compile_source({"path": "x", "transform": written}, "t")


def test_a_preset_option_is_an_option_of_some_preset_and_an_entry_key_of_any_mapping():
    owners = {name for value in PRESETS.values() for name in as_preset(value).options}
    assert owners == set(OPTION_CHECKS)
    assert owners <= set(ENTRY_KEYS)


def test_an_older_spelling_is_documented_with_the_key_it_became():
    text = REFERENCE.read_text(encoding="utf-8")
    for old, new in RENAMED.items():
        assert f"`{old}` is its older name" in text and new in PREDICATE_KEYS


def example_configs() -> list[dict]:
    """Every JSON config with ``mappings`` in the README and the docs, as a user copies it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    blocks = [block for page in pages for block in re.findall(r"```json\n(.*?)```", page.read_text(), re.S)]
    return [json.loads(block) for block in blocks if '"mappings"' in block]


def test_the_documented_example_configs_load():
    configs = example_configs()
    assert configs, "no example config found"
    for config in configs:
        base = {"api_key": "k", "account_id": "a", "integration_id": "i", "api_url": "http://127.0.0.1:9"}
        assert load(base | {"mappings": config["mappings"]}).streams
