"""Durable state behind small protocols (``base``), with what every backend shares
(records, row shapes, the rules of accepting an event); each backend's own stores live in
``clarion.backends.<name>.stores``."""
