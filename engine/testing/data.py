"""Where the real data lives: ``../shared/data`` beside the repository (as in CI), or
``$CRYPTOSCALP_SHARED_DATA``. ``shared_file`` skips the calling test, with the reason,
when a file is absent; nothing here copies the data."""
from __future__ import annotations

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.environ.get("CRYPTOSCALP_SHARED_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")
USDM_CAPTURES = ("nkaz001__hftbacktest", "examples", "usdm")


def shared_path(*parts: str) -> str:
    return os.path.join(SHARED_DATA, *parts)


def shared_file(*parts: str) -> str:
    """Path of a file in the shared data, or pytest.skip (tests only)."""
    path = shared_path(*parts)
    if not os.path.exists(path):
        import pytest
        pytest.skip(f"real data not available: {path} (CI and sessions have ../shared/data)")
    return path


def usdm_capture(symbol: str) -> str:
    return shared_file(*USDM_CAPTURES, f"{symbol.lower()}_20240808.gz")
