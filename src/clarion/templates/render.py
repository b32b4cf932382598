"""Rendering templates safely.

* Templates run in Jinja2's sandbox: no attribute access to internals, no imports.
* Values come from producers (the event payload) and may carry anything a user typed.
  HTML variants autoescape them and the result is then sanitized with nh3 (scripts, event
  handlers and ``javascript:`` URLs cannot survive even a careless template); plain-text
  variants (push, SMS, email text) have any markup stripped; subjects and titles lose their
  line breaks, so nothing can be smuggled into a mail header.
* A locale falls back from ``fr-CA`` to ``fr`` to the template's default locale.
* Rendered results are cached per (template, version, locale, channel, params): a fan-out
  to a million followers renders each locale once.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Final, Literal

import nh3
import orjson
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from clarion.channels.base import Content
from clarion.models import Channel

DIGEST: Final = "digest"
"""The variant a digest email is rendered from (shaped like ``email``, given ``items``)."""
Variant = Channel | Literal["digest"]
FIELDS: dict[str, tuple[str, ...]] = {
    Channel.PUSH: ("title", "body"),
    Channel.EMAIL: ("subject", "text", "html"),
    Channel.SMS: ("text",),
    Channel.IN_APP: ("title", "body"),
    Channel.WEBHOOK: ("title", "body"),
    Channel.LIVE: ("title", "body"),
    DIGEST: ("subject", "text", "html"),
}
_ONE_LINE = {"title", "subject"}

_text_env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
_html_env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


class RenderError(ValueError):
    """A template that cannot be rendered with these values (names the variant)."""


def compile_errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (field path, problem) of a template document that will not even compile."""
    problems = []
    for locale, channels in doc.get("variants", {}).items():
        for channel, fields in channels.items():
            for name, source in fields.items():
                env = _html_env if name == "html" else _text_env
                try:
                    env.parse(source)
                except TemplateError as exc:
                    problems.append((f"variants.{locale}.{channel}.{name}", str(exc)))
    return problems


def pick_locale(available: Iterable[str], wanted: str | None, default: str) -> str:
    """``fr-CA`` → ``fr-CA``, else ``fr``, else the default, else anything there is."""
    options = list(available)
    if wanted:
        candidates = [wanted, wanted.replace("_", "-"), wanted.split("-")[0].split("_")[0]]
        lowered = {o.lower(): o for o in options}
        for candidate in candidates:
            if candidate.lower() in lowered:
                return lowered[candidate.lower()]
    if default in options:
        return default
    return options[0]


def plain(text: str) -> str:
    """Markup stripped, entities decoded: what a phone's lock screen or an SMS shows."""
    return html.unescape(nh3.clean(text, tags=set()))


def safe_html(markup: str) -> str:
    return nh3.clean(markup)


def render(
    doc: dict[str, Any], channel: Variant, locale: str | None, params: dict[str, Any]
) -> dict[str, str]:
    """The channel's (or the digest's) fields rendered for ``locale``; raises RenderError
    naming the field."""
    key = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    variant = channel.value if isinstance(channel, Channel) else channel
    return dict(_render(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), variant, locale, key))


@lru_cache(maxsize=20_000)
def _render(
    doc_json: bytes, variant: str, locale: str | None, params_json: bytes
) -> tuple[tuple[str, str], ...]:
    doc = orjson.loads(doc_json)
    params = orjson.loads(params_json)
    variants = doc.get("variants", {})
    having = [loc for loc, chans in variants.items() if variant in chans]
    if not having:
        return ()
    chosen = pick_locale(having, locale, doc.get("default_locale", "en"))
    fields = variants[chosen][variant]
    out = []
    for name, source in fields.items():
        env = _html_env if name == "html" else _text_env
        try:
            value = env.from_string(source).render(**params)
        except TemplateError as exc:
            raise RenderError(f"variants.{chosen}.{variant}.{name}: {exc}") from exc
        if name == "html":
            value = safe_html(value)
        else:
            value = plain(value)
            if name in _ONE_LINE:
                value = " ".join(value.split())
        out.append((name, value))
    return tuple(out)


def content(rendered: dict[str, str], *, title: str, body: str, data: dict[str, Any]) -> Content:
    """Channel content from rendered fields, with the event's own title/body as fallback."""
    t = rendered.get("title") or title
    b = rendered.get("body") or body
    text = rendered.get("text") or b
    return Content(
        title=t,
        body=b,
        subject=rendered.get("subject") or t,
        text=text,
        html=rendered.get("html") or f"<p>{html.escape(text)}</p>",
        data=data,
    )
