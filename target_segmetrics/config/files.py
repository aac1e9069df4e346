"""Files the run will write, tried before the first request: a setting naming one that cannot be
opened stops the run up front, with one line, instead of failing after the run (or with a traceback).

``os.access`` is not enough: it says "writable" for any directory to root, ``/proc`` and ``/sys``
included, where no file can be created. So each file is really opened: appended to when it exists
(which changes nothing in it), else a scratch file is made (and removed) beside it, in the
directories the run would create for it anyway.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def cannot_write(value: str) -> str | None:
    """Why no file can be written at ``value``, in a few words; None when one can."""
    path = Path(value)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"its directory {str(exc.filename or path.parent)!r} cannot be created ({_why(exc)})"
    try:
        if path.exists():
            with path.open("a", encoding="utf-8"):
                pass
        else:
            # Not the file itself: another run sharing it may create it meanwhile, and must keep it.
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".try"):
                pass
    except OSError as exc:
        return f"{'opening it' if path.exists() else f'making a file in {str(path.parent)!r}'} failed ({_why(exc)})"
    return None


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_files(settings: object, names: tuple[str, ...], errors: list[str]) -> None:
    """For each setting in ``names`` that names a file: one error when it cannot be opened for writing."""
    for name in names:
        value = getattr(settings, name, None)
        if not value:
            continue
        problem = cannot_write(str(value))
        if problem is not None:
            errors.append(
                f"{name} {value!r} cannot be written: {problem}; choose a file in a directory this user can write"
            )
