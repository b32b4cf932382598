"""Templates: locale fallback, escaping hostile values, stripping markup, the sandbox."""

from __future__ import annotations

import pytest

from clarion.models import Channel
from clarion.templates.render import RenderError, compile_errors, pick_locale, render

DOC = {
    "default_locale": "en",
    "variants": {
        "en": {
            "push": {"title": "{{ actor }} commented", "body": "{{ comment }}"},
            "email": {
                "subject": "{{ actor }} commented",
                "text": "{{ comment }}",
                "html": "<p><b>{{ actor }}</b> said: {{ comment }}</p>",
            },
            "sms": {"text": "{{ actor }}: {{ comment }}"},
        },
        "fr": {"push": {"title": "{{ actor }} a commenté", "body": "{{ comment }}"}},
    },
}


@pytest.mark.parametrize(
    ("wanted", "picked"),
    [("fr", "fr"), ("fr-CA", "fr"), ("fr_FR", "fr"), ("FR", "fr"), ("de", "en"), (None, "en")],
)
def test_locale_falls_back_to_the_language_then_the_default(
    wanted: str | None, picked: str
) -> None:
    assert pick_locale(["en", "fr"], wanted, "en") == picked


def test_render_picks_the_variant_for_the_locale() -> None:
    params = {"actor": "Zoé", "comment": "Bravo"}
    assert render(DOC, Channel.PUSH, "fr-CA", params)["title"] == "Zoé a commenté"
    assert render(DOC, Channel.PUSH, "ja", params)["title"] == "Zoé commented"
    assert render(DOC, Channel.SMS, "fr", params) == {"text": "Zoé: Bravo"}  # no fr sms: en


def test_hostile_values_are_escaped_in_html_and_stripped_in_text() -> None:
    hostile = {
        "actor": "<img src=x onerror=alert(1)>Eve",
        "comment": "<script>steal()</script>hi <a href='javascript:x'>there</a>",
    }
    html = render(DOC, Channel.EMAIL, "en", hostile)["html"]
    for tag in ("<script", "<img", "<a "):
        assert tag not in html  # nothing from the values becomes live markup …
    assert "&lt;script&gt;steal()&lt;/script&gt;" in html  # … it is shown as text
    assert html.startswith("<p><b>")  # while the template's own markup survives
    push = render(DOC, Channel.PUSH, "en", hostile)
    assert push == {"title": "Eve commented", "body": "hi there"}  # markup gone, script too


def test_the_html_of_a_careless_template_is_sanitized() -> None:
    careless = {
        "variants": {
            "en": {
                "email": {
                    "subject": "s",
                    "text": "t",
                    "html": "<p onclick='x()'>{{ body | safe }}</p><script>bad()</script>",
                }
            }
        }
    }
    html = render(careless, Channel.EMAIL, "en", {"body": "<iframe src=//evil></iframe>ok"})["html"]
    assert html == "<p>ok</p>"


def test_subjects_and_titles_are_one_line() -> None:
    params = {"actor": "Eve\r\nBcc: victim@example.com", "comment": "x"}
    subject = render(DOC, Channel.EMAIL, "en", params)["subject"]
    assert "\n" not in subject
    assert "\r" not in subject


def test_missing_values_and_sandbox_escapes_are_render_errors() -> None:
    with pytest.raises(RenderError, match=r"variants\.en\.push\.title"):
        render(DOC, Channel.PUSH, "en", {"comment": "no actor"})
    sneaky = {"variants": {"en": {"push": {"title": "{{ ''.__class__.__mro__ }}", "body": ""}}}}
    with pytest.raises(RenderError):
        render(sneaky, Channel.PUSH, "en", {})


def test_compile_errors_name_the_variant() -> None:
    broken = {"variants": {"en": {"email": {"subject": "{{ oops", "text": "ok"}}}}
    ((field, reason),) = compile_errors(broken)
    assert field == "variants.en.email.subject"
    assert reason
    assert compile_errors(DOC) == []


def test_a_template_without_the_channel_renders_nothing() -> None:
    assert render(DOC, Channel.WEBHOOK, "en", {"actor": "a", "comment": "b"}) == {}
