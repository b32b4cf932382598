"""Reading long lists of user ids (follower imports), streamed, validated, then applied.

A list is fed in chunks of bytes as it arrives. Every id is checked with its line number and
spooled to a temporary file, so a ten-million-line upload costs a few kilobytes of memory.
Nothing is applied until the whole list has been read without error: bad input is refused
whole (with the first problems and their lines), never half-applied.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from enum import StrEnum
from typing import IO

import orjson

from clarion.errors import FieldProblem, InputError
from clarion.types import UserId
from clarion.validation import is_user_id

_HEADER_NAMES = {"id", "user_id", "follower_id", "follower", "followers"}
_ID_KEYS = ("id", "user_id", "follower_id")
MAX_REPORTED = 20


class IdListFormat(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"
    LINES = "lines"

    @classmethod
    def from_content_type(cls, content_type: str) -> IdListFormat | None:
        media = content_type.split(";")[0].strip().lower()
        return {
            "application/x-ndjson": cls.NDJSON,
            "application/ndjson": cls.NDJSON,
            "application/jsonl": cls.NDJSON,
            "text/csv": cls.CSV,
            "text/plain": cls.LINES,
        }.get(media)

    @classmethod
    def from_filename(cls, name: str) -> IdListFormat:
        lowered = name.lower()
        if lowered.endswith((".ndjson", ".jsonl")):
            return cls.NDJSON
        if lowered.endswith(".csv"):
            return cls.CSV
        return cls.LINES


class IdListReader:
    def __init__(self, fmt: IdListFormat) -> None:
        self._format = fmt
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._rest = b""
        self._line = 0
        self.count = 0
        self.problems: list[FieldProblem] = []
        self._problem_total = 0

    def feed(self, chunk: bytes) -> None:
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for raw in lines:
            self._take(raw)

    def finish(self) -> None:
        """Read what is left; raise ``InputError`` if any line was bad."""
        if self._rest:
            self._take(self._rest)
            self._rest = b""
        if self._problem_total:
            more = self._problem_total - len(self.problems)
            if more:
                self.problems.append(FieldProblem("body", f"… and {more} more bad lines"))
            raise InputError(self.problems)
        self._spool.seek(0)

    def chunks(self, size: int) -> Iterator[list[UserId]]:
        """The validated ids, ``size`` at a time (call after ``finish``)."""
        batch: list[UserId] = []
        for line in self._spool:
            batch.append(UserId(line[:-1].decode()))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        self._spool.close()

    def _take(self, raw: bytes) -> None:
        self._line += 1
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            user = self._parse(text)
        except ValueError as exc:
            self._problem(str(exc))
            return
        if user is None:
            return
        if not is_user_id(user):
            self._problem(f"{user[:40]!r} is not a valid user id")
            return
        self._spool.write(user.encode() + b"\n")
        self.count += 1

    def _parse(self, text: str) -> str | None:
        if self._format is IdListFormat.NDJSON:
            return _ndjson_id(text)
        if self._format is IdListFormat.CSV:
            first = next(csv.reader([text]))[0].strip() if text else ""
            if self._line == 1 and first.lower() in _HEADER_NAMES:
                return None
            return first
        return text

    def _problem(self, reason: str) -> None:
        self._problem_total += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(FieldProblem(f"body (line {self._line})", reason))


def _ndjson_id(text: str) -> str:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("not a JSON value") from None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _ID_KEYS:
            if isinstance(value.get(key), str):
                return str(value[key])
    raise ValueError('expected a JSON string or an object with "id"')
