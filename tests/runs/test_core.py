"""The SDK's standard target tests, run against the sandbox.

Two configs: name matching (most test streams have no email/contact_id and are skipped with a
warning), and every stream mapped onto one contact through a `"*"` stream map that gives each
record an email, so the odd data of the standard tests (nested, camelCase, special characters,
encoded strings, schema updates) really goes through mapping and the API.
"""

from __future__ import annotations

import atexit
import signal
from pathlib import Path

import pytest
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetArrayData,
    TargetCamelcaseComplexSchema,
    TargetCamelcaseTest,
    TargetCliPrintsTest,
    TargetDuplicateRecords,
    TargetEncodedStringData,
    TargetInvalidSchemaTest,
    TargetNoPrimaryKeys,
    TargetOptionalAttributes,
    TargetPrimaryKeyUpdates,
    TargetRecordBeforeSchemaTest,
    TargetRecordMissingOptionalFields,
    TargetRecordMissingRequiredProperty,
    TargetSchemaNoProperties,
    TargetSchemaUpdates,
    TargetSpecialCharsInAttributes,
)

from target_segmetrics.sandbox import Sandbox
from target_segmetrics.target import TargetSegMetrics


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    """The standard tests build targets in this process, and every plugin's __init__ installs its own
    SIGINT/SIGTERM handlers (the SDK's doing): put the previous ones back after each test."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


# The SDK builds test classes at import time from a config, so the sandbox starts here.
_SANDBOX = Sandbox(api_key="sdk-test-key-1", account_id="sdk", integration_ids=("standard",)).start()
atexit.register(_SANDBOX.stop)

BASE = {
    "api_key": "sdk-test-key-1",
    "account_id": "sdk",
    "integration_id": "standard",
    "api_url": _SANDBOX.base_url,
    "max_retries": 1,
}

STANDARD_TESTS = [
    TargetArrayData,
    TargetCamelcaseComplexSchema,
    TargetCamelcaseTest,
    TargetCliPrintsTest,
    TargetDuplicateRecords,
    TargetEncodedStringData,
    TargetInvalidSchemaTest,
    # Excluded: TargetMultipleStateMessages. In singer-sdk 0.54 it compares the runner's parsed
    # STATE dicts with JSON strings, so it fails for every target; it also expects a checkpoint
    # cadence of the SDK's drain timing. STATE relaying is covered in tests/runs/test_e2e.py.
    TargetNoPrimaryKeys,
    TargetOptionalAttributes,
    TargetRecordBeforeSchemaTest,
    # Excluded: TargetRecordMissingKeyProperty expects the run to crash (MissingKeyPropertiesError).
    # This target rejects such a record instead (one WARNING line naming stream and field, kept in
    # rejects_path) and goes on; tests/runs/test_e2e.py covers that behaviour.
    TargetRecordMissingRequiredProperty,
    TargetSchemaNoProperties,
    TargetSchemaUpdates,
    TargetPrimaryKeyUpdates,
    TargetSpecialCharsInAttributes,
    TargetRecordMissingOptionalFields,
]

SUITE = SingerTestSuite(kind="target", tests=STANDARD_TESTS)

TestTargetSegMetricsByName = get_target_test_class(
    TargetSegMetrics, config=BASE, custom_suites=[SUITE], include_target_tests=False
)

TestTargetSegMetricsAllStreamsAsContacts = get_target_test_class(
    TargetSegMetrics,
    config={
        **BASE,
        "stream_maps": {"*": {"email": "'standard-tests@example.com'"}},
        "mappings": {},
    },
    custom_suites=[SUITE],
    include_target_tests=False,
)


def test_standard_streams_really_reach_segmetrics():
    """The wildcard config above does send: the odd standard-test data lands as one contact."""
    import singer_sdk.testing as sdk_testing

    sandbox = Sandbox(api_key="sdk-test-key-1", account_id="sdk", integration_ids=("standard",)).start()
    try:
        config = {**BASE, "api_url": sandbox.base_url, "stream_maps": {"*": {"email": "'standard-tests@example.com'"}}}
        streams = Path(sdk_testing.__file__).parent / "target_test_streams"
        for name in ("camelcase_complex_schema", "special_chars_in_attributes", "encoded_string_data"):
            target = TargetSegMetrics(config=config)
            with (streams / f"{name}.singer").open() as lines:
                target.listen(file_input=lines)
        assert [c["email"] for c in sandbox.contacts("standard")] == ["standard-tests@example.com"]
        assert sandbox.request_count >= 10
    finally:
        sandbox.stop()
