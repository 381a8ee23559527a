"""The unit tier: no TensorFlow. When only these tests run (`make test-fast`), each test
fails if it imported TensorFlow."""

import sys

import pytest

_ONLY_UNIT = {"value": False}


def pytest_collection_modifyitems(session, config, items):
    _ONLY_UNIT["value"] = bool(items) and all("/tests/unit/" in str(i.path) for i in items)


@pytest.fixture(autouse=True)
def _no_tensorflow():
    yield
    if _ONLY_UNIT["value"]:
        assert "tensorflow" not in sys.modules, "a unit test imported TensorFlow: it belongs outside tests/unit"
