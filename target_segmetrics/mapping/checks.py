"""The config-time checks of ``mappings``: every entry compiled (each preset resolved once), the
lookups the user wrote named against the declared lookup streams, and, when a stream's schema
arrives, the paths its mapping reads against what the schema declares (with the closest declared
path as the likely fix). The paths come from the mapping's tree of nodes (``nodes.checks_of``)."""

from __future__ import annotations

import difflib
import typing as t

from target_segmetrics.mapping.compiler import (
    LookupStream,
    Requirement,
    compile_lookup_stream,
    compile_resolved,
    lookup_references,
)
from target_segmetrics.mapping.mapping import StreamMapping
from target_segmetrics.mapping.paths import ELEMENT, MappingConfigError, declared_paths, schema_has_path, shown
from target_segmetrics.mapping.presets import PRESETS
from target_segmetrics.mapping.resolving import resolve


def compile_mappings(
    mappings: t.Mapping[str, t.Any], errors: list[str]
) -> tuple[dict[str, StreamMapping], dict[str, LookupStream], dict[str, str]]:
    """The compiled entries, the lookup streams and the ignored streams (with why); every problem is
    added to ``errors``."""
    streams: dict[str, StreamMapping] = {}
    lookups: dict[str, LookupStream] = {}
    ignored: dict[str, str] = {}
    for stream, entry in mappings.items():
        try:
            resolved = resolve(stream, entry, PRESETS)  # once per entry
            if "ignore" in resolved.entry:
                ignored[stream] = _ignored_why(stream, resolved.entry)
            elif "lookup" in resolved.entry:
                lookups[stream] = compile_lookup_stream(stream, resolved.entry, written="lookup" in entry)
            else:
                streams[stream] = compile_resolved(stream, resolved)
        except MappingConfigError as exc:
            errors.extend(exc.errors)
    # Only the lookups a user wrote are checked: a preset's own lookup of a stream not listed finds
    # nothing (a deal waits, parked, for its association; a list tag falls back to the list id).
    for mapping in streams.values():
        for where, name in lookup_references(mapping.written):
            if name in lookups:
                continue
            if name in mappings and name not in ignored:
                errors.append(
                    f'{where}: stream {name!r} is not a lookup source (its entry must be {{"lookup": {{"key": ...}}}})'
                )
            else:
                errors.append(
                    f"{where}: looks up stream {name!r}, which 'mappings' does not declare (add "
                    f'"{name}": {{"lookup": {{"key": <the key in each row>}}}})'
                )
    return streams, lookups, ignored


def _ignored_why(stream: str, entry: dict[str, t.Any]) -> str:
    """``{"ignore": "<why>"}``: a stream not sent on purpose, and why (for the run's INFO line)."""
    why = entry["ignore"]
    if set(entry) != {"ignore"} or not isinstance(why, str) or not why.strip():
        raise MappingConfigError(
            f'mappings.{stream}: an ignored stream is {{"ignore": "<why, for the run\'s INFO line>"}} alone'
        )
    return why.strip()


def schema_errors(
    stream: str,
    checks: t.Iterable[tuple[str, tuple[str, ...]]],
    requires: t.Iterable[Requirement],
    schema: t.Mapping[str, t.Any],
) -> str | None:
    """Why the stream cannot be read as mapped: each place whose paths the schema declares none of,
    and each ``require`` it does not meet (None: it can)."""
    unmet = [
        f"{where}: {why}" + (f" (stream '{stream}' declares none of {', '.join(paths)})" if len(paths) <= 4 else "")
        for where, paths, why in requires
        if not any(schema_has_path(schema, path) for path in paths)
    ]
    return "; ".join(filter(None, [_path_errors(stream, checks, schema), *unmet])) or None


def _path_errors(
    stream: str, checks: t.Iterable[tuple[str, tuple[str, ...]]], schema: t.Mapping[str, t.Any]
) -> str | None:
    """Why the stream cannot be read as mapped: each place whose paths the schema declares none of."""
    errors = [
        _unknown_path(stream, where, paths, schema)
        for where, paths in checks
        if not any(schema_has_path(schema, path) or _list_unknown(schema, path) for path in paths)
    ]
    return "; ".join(errors) or None


def _list_unknown(schema: t.Mapping[str, t.Any], path: str) -> bool:
    """A path read in each element of a list the schema does not declare: the list's own check says so."""
    head, found, _ = path.partition(f".{ELEMENT}.")
    return bool(found) and not schema_has_path(schema, head)


def _unknown_path(stream: str, where: str, paths: tuple[str, ...], schema: t.Mapping[str, t.Any]) -> str:
    """``where`` reads paths the stream's schema does not declare; with the closest declared one."""
    declared = declared_paths(schema)
    close = difflib.get_close_matches(paths[0], declared, n=1, cutoff=0.6)
    hint = f" (did you mean {shown(close[0])}?)" if close else ""
    named = " or ".join(shown(p) for p in paths)
    return f"{where} reads {named}, which stream '{stream}' does not declare{hint}"
