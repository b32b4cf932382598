"""Clarion: self-hostable notification delivery."""

__version__ = "0.1.0"
