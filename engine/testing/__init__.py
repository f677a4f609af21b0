"""Test fixtures that are real components: servers and generators used by the tests
(and usable by hand), never imported by the engine's hot path."""
