import os

import pytest

from tests.conftest import conformance_dir


def test_vectors_present() -> None:
    if conformance_dir() is None:
        reason = (
            "conformance vectors not found: set STRATA_CONFORMANCE_DIR "
            "or place them at ../shared/conformance beside the checkout"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
