"""``tags_mode: own``: whose tags a contact's record decides, and whether it decides them alone.

A contact stream with ``tags_mode: own`` gives the contact's *own* tags: a tag it gave before and no
longer gives is removed, while tags other streams set (list and form tags) stay. When no other
stream can set that contact's tags, its own record decides them all, and they simply go with the
contact (SegMetrics replaces its tags: one request). Which other streams can set them:

- every other entry in ``mappings`` that sends tags to contacts (``object: tags``, or a contact
  stream with ``tags``);
- except those the entry's ``tags_elsewhere`` rules out for the stream's schema: ``{"<stream>":
  [<top-level properties>]}``, that stream never comes with contacts whose schema declares one of
  those properties (the hubspot preset: ``list_memberships`` comes only from singer-io 4.x, whose
  contacts declare neither singer-io 2.x/3.x's inline ``list-memberships`` nor MeltanoLabs'
  top-level ``lastmodifieddate``).

A property counts only when the schema names it outright (never "any doubt says yes"): a doubt
keeps the other stream counted, which costs requests, never a tag.
"""

from __future__ import annotations

import typing as t

from target_segmetrics.mapping.objects import TAG_EVENTS

if t.TYPE_CHECKING:
    from target_segmetrics.mapping.mapping import StreamMapping


def compile_tags_elsewhere(raw: t.Any, tags_mode: str, where: str, errors: list[str]) -> dict[str, tuple[str, ...]]:
    """``tags_elsewhere``: per other stream, the top-level properties of this stream's schema that
    say that stream never sets these contacts' tags."""
    if raw is None:
        return {}  # (with another tags_mode, e.g. a preset's entry overridden to "add", it is not used)
    if not isinstance(raw, dict) or not all(
        isinstance(paths, list) and paths and all(isinstance(p, str) and p for p in paths) for paths in raw.values()
    ):
        errors.append(f'{where}: must be {{"<other stream>": ["<property of this stream>", ...]}}')
        return {}
    return {str(stream): tuple(paths) for stream, paths in raw.items()}


def sets_contact_tags(mapping: StreamMapping) -> bool:
    """Whether a stream's records can set a contact's tags."""
    if mapping.spec is TAG_EVENTS:
        return True
    return (mapping.spec.family or mapping.spec.name) == "contact" and bool(mapping.tags)


def others_setting_tags(
    stream: str,
    mapping: StreamMapping,
    streams: t.Mapping[str, StreamMapping],
    schema: t.Mapping[str, t.Any],
) -> list[str]:
    """The other streams of ``mappings`` that may set the tags of this stream's contacts."""
    found = schema.get("properties")
    declared: t.Mapping[str, t.Any] = found if isinstance(found, dict) else {}
    return sorted(
        name
        for name, other in streams.items()
        if name != stream
        and sets_contact_tags(other)
        and not any(path in declared for path in mapping.tags_elsewhere.get(name, ()))
    )
