"""Segments: who a campaign is for, by the attributes people have (``PUT /v1/users/{id}``
``{"attributes": {...}}``).

    {"plan": "premium", "country": {"in": ["FR", "BE"]}, "age_days": {"gte": 30},
     "beta": {"exists": true}, "all": [{"interests": "music"}, ...]}

Every key is a condition and all must hold: a plain value is equality (for a list
attribute: the list holds it), ``in`` is one of, ``gt``/``gte``/``lt``/``lte`` are numeric
bounds, ``exists`` is presence; ``all`` nests more conditions. A segment is compiled to
SQL for the store (``where``), so it is evaluated over pages of the users table, never one
person at a time in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from clarion.errors import FieldProblem, InputError

Dialect = Literal["sqlite", "postgres"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_BOUNDS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_OPS = {"in", "exists", "eq", *_BOUNDS}


@dataclass(frozen=True, slots=True)
class Condition:
    attribute: str
    op: str
    value: Any


def parse(doc: Any, field: str = "segment") -> list[Condition]:
    """The conditions of a segment document; ``InputError`` naming every bad part."""
    problems: list[FieldProblem] = []
    found = _parse(doc, field, problems)
    if problems:
        raise InputError(problems)
    if not found:
        raise InputError.single(field, "a segment needs at least one condition")
    return found


def _parse(doc: Any, field: str, problems: list[FieldProblem]) -> list[Condition]:
    if not isinstance(doc, dict):
        problems.append(FieldProblem(field, "a segment is an object of conditions"))
        return []
    found: list[Condition] = []
    for key, value in doc.items():
        where = f"{field}.{key}"
        if key == "all":
            if not isinstance(value, list) or not value:
                problems.append(FieldProblem(where, "a non-empty list of segments"))
                continue
            for n, part in enumerate(value):
                found += _parse(part, f"{where}[{n}]", problems)
        elif not _NAME.match(key):
            problems.append(FieldProblem(where, "attribute names are a-z, 0-9 and _"))
        elif isinstance(value, dict):
            found += _operators(key, value, where, problems)
        elif _scalar(value):
            found.append(Condition(key, "eq", value))
        else:
            problems.append(FieldProblem(where, "a string, number, boolean or an operator"))
    return found


def _operators(
    name: str, ops: dict[str, Any], field: str, problems: list[FieldProblem]
) -> list[Condition]:
    found = []
    if not ops:
        problems.append(FieldProblem(field, "an operator: in, exists, gt, gte, lt, lte or eq"))
    for op, value in ops.items():
        where = f"{field}.{op}"
        if op not in _OPS:
            problems.append(
                FieldProblem(where, "not an operator: in, exists, gt, gte, lt, lte, eq")
            )
        elif op == "in" and not (
            isinstance(value, list) and value and all(_scalar(v) for v in value)
        ):
            problems.append(FieldProblem(where, "a non-empty list of strings or numbers"))
        elif op == "exists" and not isinstance(value, bool):
            problems.append(FieldProblem(where, "true or false"))
        elif op in _BOUNDS and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(FieldProblem(where, "a number"))
        elif op == "eq" and not _scalar(value):
            problems.append(FieldProblem(where, "a string, number or boolean"))
        else:
            found.append(Condition(name, op, value))
    return found


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def where(conditions: list[Condition], dialect: Dialect, param: Callable[[Any], str]) -> str:
    """The SQL condition on ``u.attributes`` (``users u``): ``param`` adds a query
    parameter and returns its placeholder."""
    compile_one = _sqlite if dialect == "sqlite" else _postgres
    return " AND ".join(f"({compile_one(c, param)})" for c in conditions)


def _sqlite(c: Condition, param: Callable[[Any], str]) -> str:
    path = param(f"$.{c.attribute}")
    value = f"json_extract(u.attributes, {path})"
    kind = f"json_type(u.attributes, {path})"
    if c.op == "exists":
        return f"{kind} IS {'NOT ' if c.value else ''}NULL"
    if c.op in _BOUNDS:
        return f"{kind} IN ('integer', 'real') AND {value} {_BOUNDS[c.op]} {param(c.value)}"
    if c.op == "in":
        return f"{value} IN ({', '.join(param(v) for v in c.value)})"
    wanted = param(c.value)
    held = f"EXISTS (SELECT 1 FROM json_each(u.attributes, {path}) e WHERE e.value = {wanted})"
    return f"{value} = {wanted} OR ({kind} = 'array' AND {held})"


def _postgres(c: Condition, param: Callable[[Any], str]) -> str:
    value = f"(u.attributes -> {param(c.attribute)}::text)"
    if c.op == "exists":
        return (
            f"{'' if c.value else 'NOT '}coalesce(u.attributes ? {param(c.attribute)}::text, false)"
        )
    if c.op in _BOUNDS:
        return (
            f"jsonb_typeof({value}) = 'number'"
            f" AND {value}::float8 {_BOUNDS[c.op]} {param(float(c.value))}::float8"
        )
    if c.op == "in":
        choices = param(orjson.dumps(c.value).decode())
        return f"{value} IN (SELECT jsonb_array_elements({choices}::jsonb))"
    wanted = orjson.dumps(c.value).decode()
    one = orjson.dumps([c.value]).decode()
    return (
        f"{value} = {param(wanted)}::jsonb"
        f" OR (jsonb_typeof({value}) = 'array' AND {value} @> {param(one)}::jsonb)"
    )
