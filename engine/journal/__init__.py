"""The append-only journal (memory-mapped, checksummed, rotating segments) and its
PostgreSQL writer."""
