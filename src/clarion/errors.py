"""Every error Clarion raises on purpose, rooted at :class:`ClarionError`.

    ClarionError
    ├── ConfigError                 a setting or URL that cannot work; raised at start-up
    ├── InputError                  input that breaks a rule; carries (field, reason) pairs → 400
    ├── UnauthenticatedError        no key, or an unknown or revoked one → 401
    ├── ForbiddenError              a known key asking for something it may not do → 403
    ├── NotFoundError               → 404
    ├── ConflictError               a request that contradicts current state → 409
    ├── RateLimitedError            over a sender's rate; carries retry_after_s → 429
    └── BackendError                a store or broker that failed underneath us → 503
        ├── CountsUnavailableError      frequency counts out of reach (caps fail open/closed)
        └── AggregatesUnavailableError  aggregation windows out of reach (deliver alone)

The API maps each class to its status code in one place (``clarion.api.errors``); the CLI
prints the message and exits non-zero. Nothing else in the code base catches these to
re-word them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ClarionError(Exception):
    """Root of every error Clarion raises deliberately."""


class ConfigError(ClarionError):
    """A setting that cannot work (bad URL, unknown backend, out-of-range number)."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One reason one field was refused. ``field`` is a dotted path such as ``events[3].type``."""

    field: str
    reason: str


class InputError(ClarionError):
    """Input that breaks one or more rules; every problem is listed, not only the first."""

    def __init__(self, problems: Iterable[FieldProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in self.problems))

    @classmethod
    def single(cls, field: str, reason: str) -> InputError:
        return cls([FieldProblem(field, reason)])


class UnauthenticatedError(ClarionError):
    """No credentials, or credentials we do not know."""


class ForbiddenError(ClarionError):
    """Known credentials that do not allow this action."""


class NotFoundError(ClarionError):
    """The thing asked for does not exist."""


class ConflictError(ClarionError):
    """The request contradicts the current state (e.g. disabling a mandatory type)."""


class StaleVersionError(ConflictError):
    """Someone else changed the record since it was read; read it again and retry."""


class RateLimitedError(ClarionError):
    """Over a rate limit; try again after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BackendError(ClarionError):
    """A store or broker failed; the caller may retry later."""


class CountsUnavailableError(BackendError):
    """Frequency counts cannot be read right now (Redis is away). Evaluation lets P0 and
    P1 through uncapped and holds P2 back until they can be read (seed 001: fail open for
    P0, allow P1, fail closed for marketing)."""


class AggregatesUnavailableError(BackendError):
    """Aggregation windows cannot be read right now (Redis is away). Evaluation delivers
    each notification on its own meanwhile: better to over-notify than lose (seed 001)."""
