"""A local, strict stand-in for SegMetrics' import API (the "sandbox").

    from target_segmetrics.sandbox import Sandbox

    with Sandbox(api_key="test-key", account_id="acct1", integration_ids=("int1",)) as sb:
        ...  # POST to f"{sb.base_url}/acct1/int1/contact" with header Authorization: test-key
        sb.contacts()  # what it holds

Run standalone with ``python -m target_segmetrics.sandbox`` (see :mod:`.cli`) and inspect it with
``python -m target_segmetrics.sandbox.show``. Semantics: :mod:`.state` (data model),
:mod:`.validation` (400 rules), :mod:`.server` (routes, auth, order of checks), :mod:`.faults`.
"""

from typing import TYPE_CHECKING, Any

from .cli import main
from .faults import NOT_ACKNOWLEDGEMENTS, Answers, FaultAction, FaultContext, FaultPolicy, Faults

if TYPE_CHECKING:
    from .server import Sandbox

__all__ = ["NOT_ACKNOWLEDGEMENTS", "Answers", "FaultAction", "FaultContext", "FaultPolicy", "Faults", "Sandbox", "main"]


def __getattr__(name: str) -> Any:
    # The server needs aiohttp (the `sandbox` extra); importing it only when asked for lets
    # `segmetrics-sandbox` say how to install it, and `show` run without it.
    if name == "Sandbox":
        from .server import Sandbox

        return Sandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
