"""cryptoscalp engine: every component, importable and testable without processes."""

__version__ = "0.1.0"
