"""Durable state behind small protocols (``base``), one package per backend."""
