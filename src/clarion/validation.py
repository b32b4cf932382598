"""Shape rules shared by the API and the CLI: names and user ids."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarion.errors import InputError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""Type names, sender names: what is safe in a URL path and a log line."""

USER_ID_PATTERN = r"^[^\s/?#\\\x00-\x1f\x7f]{1,128}$"
"""User ids are the producer's own ids (emails included); they only must fit in a URL path."""

_NAME = re.compile(NAME_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)


def check_name(field: str, value: str) -> str:
    if not _NAME.match(value):
        raise InputError.single(
            field,
            f"{value!r} is not a valid name: 1-64 letters, digits, '_', '.', ':' or '-',"
            " starting with a letter or digit",
        )
    return value


def is_user_id(value: str) -> bool:
    return bool(_USER_ID.match(value))


def check_user_id(field: str, value: str) -> str:
    if not is_user_id(value):
        raise InputError.single(
            field, f"{value[:40]!r} is not a valid user id: 1-128 characters, no spaces, '/?#\\'"
        )
    return value


def is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
