"""Strategies: components that take market records, features, model output and their own
fills, and return intents (ORDER records). No I/O, no clock reads."""
