"""Compiled extensions (Cython): shared-memory rings and regions, record layouts."""
