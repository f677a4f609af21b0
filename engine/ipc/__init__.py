"""Inter-process transport: shared-memory rings and regions (cext), their lifecycle."""
