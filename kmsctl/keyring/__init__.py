"""Keyring storage (``store``), the opened keyring (``keyring``) and unlock sources (``unlock``)."""
