"""Features: numba indicators, the 25-feature vector (one kernel for live and batch),
regime detection."""
