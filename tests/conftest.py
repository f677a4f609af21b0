"""Shared fixtures: unique shared-memory names, cleaned up after each test."""
import os
import uuid

import pytest

from cext.shm_core import find_segments


@pytest.fixture
def shm_prefix():
    """A unique '/cs.test.<pid>.<rand>.' prefix; every segment under it is unlinked after."""
    prefix = f"/cs.test.{os.getpid()}.{uuid.uuid4().hex[:8]}."
    yield prefix
    for name in find_segments(prefix):
        try:
            os.unlink("/dev/shm/" + name.lstrip("/"))
        except FileNotFoundError:
            pass



@pytest.fixture
def btc_capture():
    from engine.testing.data import usdm_capture
    return usdm_capture("BTCUSDT")


@pytest.fixture
def eth_capture():
    from engine.testing.data import usdm_capture
    return usdm_capture("ETHUSDT")
