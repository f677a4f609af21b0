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
def shm_run():
    """A unique run name for the process-group segments (/cs.<run>.*) and doorbells
    (csbell.<run>.*); all of them are removed after."""
    from engine.ipc.waits import remove_bells
    name = f"t{os.getpid()}x{uuid.uuid4().hex[:8]}"
    yield name
    for seg in find_segments(f"/cs.{name}."):
        try:
            os.unlink("/dev/shm/" + seg.lstrip("/"))
        except FileNotFoundError:
            pass
    remove_bells(name)


@pytest.fixture
def btc_capture():
    from engine.testing.data import usdm_capture
    return usdm_capture("BTCUSDT")


@pytest.fixture
def eth_capture():
    from engine.testing.data import usdm_capture
    return usdm_capture("ETHUSDT")


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory):
    """A model registry with one version trained on 480 s of the synthetic market (seed 3);
    tests that change it copy it first (``registry_copy``)."""
    from engine.models.train import TrainConfig, train
    from engine.venues.sim.generator import write_synthetic_capture
    d = tmp_path_factory.mktemp("models")
    cap = str(d / "syn.gz")
    write_synthetic_capture(cap, 480, seed=3)
    root = str(d / "registry")
    train([cap], root, TrainConfig(seed=0), log=lambda *a: None)
    return {"root": root, "capture": cap}


@pytest.fixture
def registry_copy(trained_registry, tmp_path):
    import shutil
    dst = str(tmp_path / "registry")
    shutil.copytree(trained_registry["root"], dst)
    return dst
