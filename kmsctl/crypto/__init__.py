"""Primitives (``primitives``, the only hazmat importer) and kmsctl's binary formats."""
