"""Segment naming and stale-segment discovery."""
import pytest

from engine.ipc import run_prefix, segment_name


def test_names():
    assert run_prefix("main") == "/cs.main."
    assert segment_name("main", "market") == "/cs.main.market"


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 33, "sp ace", "dot.ted"])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError, match="must be 1-32 characters"):
        segment_name("main", bad)
    with pytest.raises(ValueError, match="must be 1-32 characters"):
        run_prefix(bad)
