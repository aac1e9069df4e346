"""A ``mappings`` entry with its preset applied, before it is compiled (``compiler.py``).

``"preset": "hubspot"`` picks the preset's mapping for the stream (``hubspot/<stream>``),
``"hubspot/deals"`` names one outright; the entry's own keys go over the preset's (``fields`` and
``custom_fields`` name by name), and the preset's own options (``currency``) make it again. A
preset may also make the stream a lookup source or leave it unmapped, with the reason.
"""

from __future__ import annotations

import copy
import difflib
import typing as t
from dataclasses import dataclass

from target_segmetrics.mapping.paths import MappingConfigError
from target_segmetrics.mapping.presets import PRESET_OPTION_NAMES, UNKNOWN_WHY, Preset, as_preset


@dataclass(frozen=True)
class Resolved:
    """A ``mappings`` entry with its preset applied: the whole entry, what the user wrote, and what
    only the preset knows (a preset is Python: its options are not keys of an entry)."""

    entry: dict[str, t.Any]
    written: dict[str, t.Any]
    preset: Preset | None = None


def resolve(stream: str, entry: t.Any, presets: t.Mapping[str, t.Any]) -> Resolved:
    """The preset's entry with the entry's own keys over it (``fields``/``custom_fields`` per name).

    ``"preset": "hubspot"`` picks ``hubspot/<stream>``; ``"hubspot/deals"`` names one outright; the
    preset's own options (``currency``) make it again. The entry may also become a lookup source
    (``{"lookup": ...}``) or ``{"ignore": why}``: a stream of the family the preset has no mapping
    for, or one it names as not for SegMetrics.
    """
    where = f"mappings.{stream}"
    if not isinstance(entry, dict):
        raise MappingConfigError(f"{where}: must be an object, got {entry!r}")
    name = entry.get("preset")
    if name is None:
        return Resolved(entry, entry)
    if not isinstance(name, str):
        raise MappingConfigError(f"{where}.preset: must be a preset name, got {name!r}")
    chosen = name if name in presets else f"{name}/{stream}"
    own = {key: value for key, value in entry.items() if key != "preset"}
    preset: Preset | None = None
    if chosen not in presets:
        family = sorted(key for key in presets if key.startswith(f"{name}/"))
        if not family:
            known = sorted({key.split("/")[0] for key in presets} | set(presets))
            raise MappingConfigError(f"{where}.preset: unknown preset {name!r} (known: {', '.join(known)})")
        streams = [key.split("/", 1)[1] for key in family]
        close = difflib.get_close_matches(stream, streams, n=1, cutoff=0.75)
        base: dict[str, t.Any] = {"ignore": UNKNOWN_WHY + (f"; did you mean {close[0]!r}?" if close else "")}
    else:
        preset = as_preset(presets[chosen])
        # The preset's own options; they stay in the entry too (currency: every plain cents reads it, see
        # with_currency), where any mapping may set them.
        options = {
            key: own[key]
            for key in PRESET_OPTION_NAMES
            if key in own and key in preset.options and own[key] is not None
        }
        if options:
            preset = preset.made(options, where)
        base = preset.entry
    own_written = {"preset": name, **own}
    if "lookup" in base or "ignore" in base:
        if own:
            what = "a lookup source" if "lookup" in base else "not mapped"
            raise MappingConfigError(
                f"{where}: with preset {name!r} this stream is {what}; it takes no other keys "
                f"(got {', '.join(sorted(own))}): write a whole entry without 'preset' to map it your way"
            )
        return Resolved(copy.deepcopy(base), own_written, preset)
    merged = copy.deepcopy(base)
    for key, value in own.items():
        if key in ("fields", "custom_fields") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return Resolved(merged, own_written, preset)
