"""``clarion bench``: measured numbers, printed as a table or as one JSON line.

``shared`` holds the group and what its commands share; ``delivery`` the pipeline's
benchmarks (fan-out, evaluation, campaigns, isolation, aggregation); ``edges`` those of
ingest, providers and live streams, and the whole report."""

from __future__ import annotations

from clarion.cli.bench import delivery, edges
from clarion.cli.bench.shared import app

__all__ = ["app", "delivery", "edges"]
