"""Seqlock regions in one process."""
import numpy as np
import pytest

from cext.region import Region, RegionLayoutError
from engine.schema import BOOK_TOP_DTYPE, HEARTBEAT_DTYPE, POSITION_DTYPE


def test_write_read_snapshot(shm_prefix):
    reg = Region.create(shm_prefix + "book", BOOK_TOP_DTYPE, 3)
    rec = np.zeros(1, BOOK_TOP_DTYPE)
    rec["inst"] = 2
    rec["bid_px"][0] = np.arange(10) + 100
    rec["ask_qty"][0, 9] = 77
    reg.write(2, rec)
    other = Region.attach(shm_prefix + "book", BOOK_TOP_DTYPE)
    out = np.zeros(1, BOOK_TOP_DTYPE)
    other.read(2, out)
    assert out.tobytes() == rec.tobytes()
    snap = other.snapshot()
    assert snap.shape == (3,) and snap[2]["ask_qty"][9] == 77 and snap[0]["inst"] == 0
    assert other.owner_pid == reg.owner_pid
    other.close(); reg.close(); reg.unlink()


def test_layout_and_bounds_are_checked(shm_prefix):
    reg = Region.create(shm_prefix + "hb", HEARTBEAT_DTYPE, 2)
    with pytest.raises(RegionLayoutError, match="expects"):
        Region.attach(shm_prefix + "hb", POSITION_DTYPE)
    with pytest.raises(IndexError, match="out of range"):
        reg.write(2, np.zeros(1, HEARTBEAT_DTYPE))
    with pytest.raises(ValueError, match="bytes"):
        reg.write(0, np.zeros(2, HEARTBEAT_DTYPE))
    with pytest.raises(ValueError, match="at least one slot"):
        Region.create(shm_prefix + "zero", HEARTBEAT_DTYPE, 0)
    reg.close()
    with pytest.raises(ValueError, match="closed"):
        reg.read(0, np.zeros(1, HEARTBEAT_DTYPE))
    reg.unlink()
