"""A HubSpot user's runs, end to end: every stream of each tap-hubspot variant listed with the preset.

The input is what each variant's real code emitted (tests/fixtures/hubspot, see its README): a first
run, an incremental second run from the first run's STATE after edits in HubSpot, and a run with a
later start_date. Each run of the target reads the variant's files joined in the order the tap syncs
its streams, with one store across the runs, as `meltano run tap-hubspot target-segmetrics` would.
"""

from __future__ import annotations

import pytest
from helpers import FIXTURES, base_config, held, invoices, readme_hubspot_mappings, rejected

HUBSPOT = FIXTURES / "hubspot"

SYNC_ORDER = {
    # The files of each variant's output, in the order the tap syncs those streams.
    # MeltanoLabs: its discover_streams() order (its association streams come last; here each comes in
    # the file of the stream it links, just before it).
    "meltanolabs": ["contacts", "owners", "deal_pipelines", "properties", "deals", "line_items", "products"],
    "singerio": ["subscription_changes", "contacts", "deals", "forms", "owners", "contact_lists", "deal_pipelines"],
    "singerio_legacy": [
        "subscription_changes",
        "contacts",
        "deals",
        "forms",
        "owners",
        "contact_lists",
        "deal_pipelines",
    ],
}
VARIANTS = list(SYNC_ORDER)

# The README's one config, plus streams a variant emits that it does not name (listed all the same).
EVERY_STREAM = readme_hubspot_mappings() | {
    name: {"preset": "hubspot"} for name in ("deal_pipelines", "email_subscriptions")
}

WEBINAR, NEWSLETTER = "HubSpot list: Webinar attendees – Feb 2024", "HubSpot list: Newsletter subscribers (active)"


def tap_output(tmp_path, variant: str, run: str = ""):
    """One run of the tap: the variant's files of that run (``""``, ``incremental_``, ``start_date_``)."""
    path = tmp_path / f"{variant}-{run or 'first_'}run.singer"
    files = [HUBSPOT / f"{variant}_{run}{job}.singer" for job in SYNC_ORDER[variant]]
    path.write_text("".join(f.read_text() for f in files if f.exists()))
    return path


def core(contacts: dict[str, dict]) -> dict[str, dict]:
    """What every variant can give: the contact's fields and its lifecycle, lead status and source tags."""
    kept = ("Lifecycle: ", "Lead status: ", "Source: ")
    return {
        cid: c | {"tags": [tag for tag in c["tags"] if tag.startswith(kept)]} for cid, c in sorted(contacts.items())
    }


@pytest.fixture
def runs(sandbox, run_target, tmp_path):
    """Run the target over one variant's tap runs, in order, sharing one store; what each run printed."""

    def run(variant: str, *which: str):
        config = base_config(
            sandbox,
            mappings=EVERY_STREAM,
            state_db_path=str(tmp_path / f"{variant}.sqlite3"),
            rejects_path=str(tmp_path / f"{variant}-rejects.jsonl"),
        )
        done = []
        for name in which:
            result = run_target(config, tap_output(tmp_path, variant, name))
            assert result.returncode == 0, result.stderr
            assert result.errors == []
            done.append(result)
        return done

    return run


def first_run(sandbox, runs, variant):
    sandbox.reset()
    runs(variant, "")
    return held(sandbox), invoices(sandbox)


def test_every_variant_gives_segmetrics_the_same_contacts_and_revenue(sandbox, runs, tmp_path):
    results = {variant: first_run(sandbox, runs, variant) for variant in VARIANTS}
    contacts = {variant: core(found[0]) for variant, found in results.items()}
    assert contacts["meltanolabs"] == contacts["singerio"] == contacts["singerio_legacy"]
    alice = contacts["meltanolabs"]["74251"]
    assert alice["tags"] == ["Lead status: Connected", "Lifecycle: Customer", "Source: Paid Social"]
    assert (alice["utm_source"], alice["utm_medium"], alice["utm_campaign"]) == (
        "facebook",
        "paid_social",
        "spring_promo",
    )
    assert contacts["meltanolabs"]["74255"]["status"] == "inactive"  # hs_email_optout, and its portal-wide unsubscribe
    assert sorted(contacts["meltanolabs"]) == ["74251", "74252", "74253", "74254", "74255", "74256"]

    # Revenue: the won deal on its contact, in USD; the GBP deal is refused with its reason, never converted.
    for variant, (_, found) in results.items():
        assert {i: (v["contact_id"], v["amount"]) for i, v in found.items()} == {"7001": ("74251", 150000)}, variant
        reasons = rejected(tmp_path / f"{variant}-rejects.jsonl")
        assert any("the deal is in 'GBP', not in USD" in why for why in reasons.values()), variant
    # Items: the deal's line items where the tap has them, else one item whose product is the pipeline.
    assert results["meltanolabs"][1]["7001"]["items"] == [("Annual plan", "3101", 150000)]
    for variant in ("singerio", "singerio_legacy"):
        assert results[variant][1]["7001"]["items"] == [
            ("HubSpot pipeline: default", "hubspot-pipeline-default", 150000)
        ]


def test_lists_and_forms_become_dated_readable_tags_where_the_tap_has_them(sandbox, runs):
    for variant in ("singerio", "singerio_legacy"):  # 4.x: list_memberships, form_submissions; 2.x/3.x: inline
        contacts, _ = first_run(sandbox, runs, variant)
        extra = {
            cid: [t for t in c["tags"] if t.startswith(("HubSpot list: ", "Form: "))] for cid, c in contacts.items()
        }
        assert extra == {
            "74251": ["Form: Demo request", WEBINAR],
            "74252": ["Form: E-book download", NEWSLETTER, WEBINAR],
            "74253": ["Form: Webinar registration", NEWSLETTER, WEBINAR],
            "74254": [],
            "74255": ["Form: Newsletter signup", NEWSLETTER],
            "74256": [],
        }, variant
        dated = {tag["name"]: tag.get("date") for c in sandbox.contacts() for tag in c["tags"]}
        assert dated["Form: Demo request"] == "2024-02-14 16:05:12"  # when Alice submitted it
    contacts, _ = first_run(sandbox, runs, "meltanolabs")  # the MeltanoLabs tap has neither
    assert not any(t.startswith(("HubSpot list: ", "Form: ")) for c in contacts.values() for t in c["tags"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_an_incremental_run_after_edits_in_hubspot(sandbox, runs, tmp_path, variant):
    first, _ = runs(variant, "", "incremental_")
    assert "  owners -> lookup rows: 1 received" in first.stderr  # remembered by key, not sent
    contacts = held(sandbox)
    # 74253 moved to the portal's custom stage 1034567 ("Product trial"): its label where the tap emits the
    # property definitions (MeltanoLabs), else its value; the old stage's tag is gone; lead status NEW -> OPEN.
    stage = "Lifecycle: Product trial" if variant == "meltanolabs" else "Lifecycle: 1034567"
    li = contacts["74253"]["tags"]
    assert [t for t in li if t.startswith(("Lifecycle: ", "Lead status: "))] == ["Lead status: Open", stage]
    # 74252 opted out of all email; her list tags (set by another stream in the first run) stay.
    zoe = contacts["74252"]
    assert zoe["status"] == "inactive"
    if variant != "meltanolabs":
        assert {WEBINAR, NEWSLETTER} <= set(zoe["tags"]) and {WEBINAR, NEWSLETTER} <= set(li)
        assert WEBINAR in contacts["74255"]["tags"]  # joined list 12 in HubSpot
    # Every contact has exactly one lifecycle tag and one source tag.
    for cid, contact in contacts.items():
        assert len([t for t in contact["tags"] if t.startswith("Lifecycle: ")]) == 1, cid
        assert len([t for t in contact["tags"] if t.startswith("Source: ")]) == 1, cid
    # The new contact: her own utm_* properties, HubSpot's channel as a tag, her won deal as revenue.
    nina = contacts["74257"]
    assert (nina["utm_source"], nina["utm_medium"], nina["utm_campaign"], nina["utm_term"], nina["utm_content"]) == (
        "google",
        "cpc",
        "summer_sale",
        "crm software",
        "ad_variant_b",
    )
    assert "Source: Paid Search" in nina["tags"] and nina["status"] == "active"
    found = invoices(sandbox)
    assert (found["7005"]["contact_id"], found["7005"]["amount"]) == ("74257", 99800)
    if variant == "meltanolabs":
        assert found["7005"]["items"] == [("Starter", "3102", 99800)]  # its line item: 2 x Starter
    # Deal 7003 (EUR) was won: refused with its reason, not sent as if in USD.
    assert "7003" not in found
    assert any(
        "the deal is in 'EUR', not in USD" in why for why in rejected(tmp_path / f"{variant}-rejects.jsonl").values()
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_start_date_run_gives_the_same_contacts_and_revenue(sandbox, runs, variant):
    # The taps compare start_date with the last-modified time, so a contact created before it but
    # edited after is still emitted: every contact and deal comes. singer-io 4.x's list memberships and
    # form submissions are filtered on their own dates: only those since start_date come.
    runs(variant, "")
    contacts, revenue = held(sandbox), invoices(sandbox)
    sandbox.reset()
    runs(variant, "start_date_")
    assert core(held(sandbox)) == core(contacts)
    assert invoices(sandbox) == revenue
    for cid, contact in held(sandbox).items():
        assert set(contact["tags"]) <= set(contacts[cid]["tags"]), cid
    if variant == "singerio":
        alice = held(sandbox)["74251"]["tags"]
        assert "Form: Demo request" not in alice and WEBINAR not in alice  # both 2024-02-14, before start_date
        assert WEBINAR in held(sandbox)["74253"]["tags"]  # joined 2024-02-22


@pytest.mark.parametrize("variant", VARIANTS)
def test_flattening_on_gives_the_same_segmetrics_data_in_both_runs(sandbox, run_target, tmp_path, variant):
    def both_runs(**extra):
        sandbox.reset()
        config = base_config(sandbox, mappings=EVERY_STREAM, state_db_path=str(tmp_path / f"{len(extra)}.db"), **extra)
        for name in ("", "incremental_"):
            result = run_target(config, tap_output(tmp_path, variant, name))
            assert result.returncode == 0 and result.errors == [], result.stderr
        return held(sandbox), invoices(sandbox)

    plain = both_runs()
    assert both_runs(flattening_enabled=True, flattening_max_depth=3) == plain


@pytest.mark.parametrize("variant", ["singerio", "singerio_legacy"])
def test_a_portal_wide_unsubscribe_makes_the_contact_inactive(sandbox, run_target, variant):
    # Three changes: two sign-ups to one subscription type (nothing to say of the opt-in status:
    # skipped) and j.doe's unsubscribe from all email.
    config = base_config(sandbox, mappings={"subscription_changes": {"preset": "hubspot"}})
    run = run_target(config, HUBSPOT / f"{variant}_subscription_changes.singer")
    assert run.returncode == 0, run.stderr
    assert [(c["email"], c["status"]) for c in sandbox.contacts()] == [("j.doe+newsletter@example.com", "inactive")]
    assert (
        "3 received, 1 request sent, 1 created or updated, 0 unchanged, 0 deleted, 0 rejected, 2 skipped" in run.stderr
    )
