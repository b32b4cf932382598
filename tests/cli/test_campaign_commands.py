"""``clarion campaigns`` and ``clarion audiences`` as a person uses them against a running
API: readable tables, ``--json`` for scripts, and errors that name what to fix."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from clarion import cli
from clarion.errors import ClarionError
from tests.conftest import Api, unique


def clarion(api: Api, *args: str) -> Result:
    return CliRunner().invoke(cli.app, [*args, "--url", api.url, "--key", api.admin_key])


def refusal(done: Result) -> str:
    """What ``clarion`` prints after ``error:`` (``cli.main`` turns these into the message
    and exit status 2 or 1; in this process they arrive as the exception)."""
    assert done.exit_code != 0
    assert isinstance(done.exception, ClarionError), done.output
    return str(done.exception)


def test_a_campaign_from_upload_to_cancel_through_the_cli(api: Api, tmp_path: Path) -> None:
    promo = api.register_type(unique("promo_"), priority="P2")
    people = tmp_path / "people.csv"
    people.write_text("user_id\n" + "".join(f"cli_{n}\n" for n in range(30)) + "cli_1\n")
    uploaded = clarion(api, "audiences", "upload", str(people), "--name", "spring", "--json")
    assert uploaded.exit_code == 0, uploaded.output
    audience = json.loads(uploaded.stdout)
    assert audience["size"] == 30  # the header and the repeat fold away
    made = clarion(
        api, "campaigns", "create", "--name", "spring", "--type", promo,
        "--audience", audience["id"], "--title", "Hello", "--draft",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "draft" in made.stdout
    listed = clarion(api, "campaigns", "list", "--json")
    (campaign,) = [c for c in json.loads(listed.stdout) if c["name"] == "spring"]
    table = clarion(api, "campaigns", "list")
    assert "spring" in table.stdout
    assert "draft" in table.stdout
    shown = clarion(api, "campaigns", "show", campaign["id"], "--watch")
    assert shown.exit_code == 0, shown.output  # a draft: nothing to wait for
    assert "rollout_percent" in shown.stdout
    cancelled = clarion(api, "campaigns", "cancel", campaign["id"], "--json")
    assert json.loads(cancelled.stdout)["state"] == "cancelled"


def test_campaign_commands_say_what_to_fix(api: Api) -> None:
    no_audience = clarion(api, "campaigns", "create", "--name", "x", "--type", "promo")
    assert "audience: give one of --followers-of" in refusal(no_audience)
    bad_segment = clarion(
        api, "campaigns", "create", "--name", "x", "--type", "promo", "--segment", "{plan"
    )  # fmt: skip
    assert "segment: not valid JSON" in refusal(bad_segment)
    unknown = clarion(
        api, "campaigns", "create", "--name", "x", "--type", unique("nope_"), "--all"
    )  # fmt: skip
    assert refusal(unknown).startswith("type:")
    keyless = CliRunner().invoke(
        cli.app, ["campaigns", "list", "--url", api.url], env={"CLARION_KEY": ""}
    )
    assert "CLARION_KEY" in refusal(keyless)
    assert "404" in refusal(clarion(api, "campaigns", "show", "cmp_nope"))
    nowhere = CliRunner().invoke(
        cli.app, ["campaigns", "list", "--url", "http://127.0.0.1:9", "--key", "k"]
    )
    assert "cannot reach" in refusal(nowhere)


def test_campaign_show_lists_suppressions_under_their_reasons(api: Api, tmp_path: Path) -> None:
    from tests.api.test_campaigns import _expand, promo_with_opt_outs

    promo, people = promo_with_opt_outs(api, 5, opted_out=2)
    listed = tmp_path / "readers.txt"
    listed.write_text("\n".join(people) + "\n")
    uploaded = clarion(api, "audiences", "upload", str(listed), "--name", "readers", "--json")
    made = clarion(
        api, "campaigns", "create", "--name", "readers", "--type", promo,
        "--audience", json.loads(uploaded.stdout)["id"], "--title", "Hello", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    _expand(api)
    shown = clarion(api, "campaigns", "show", json.loads(made.stdout)["id"])
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert ["│", "suppressed", "│", "2", "│"] in lines
    assert ["│", "disabled_type", "│", "2", "│"] in lines


def test_no_campaigns_says_so(api: Api) -> None:
    newcomer = api.sender_key(unique("newcomer"))  # sees its own campaigns only: none
    done = CliRunner().invoke(cli.app, ["campaigns", "list", "--url", api.url, "--key", newcomer])
    assert done.exit_code == 0, done.output
    assert "No campaigns yet" in done.stdout
