"""``clarion fake-providers``: every provider look-alike on loopback, for staging and demos."""

from __future__ import annotations

import asyncio
import json
import signal
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clarion.channels.config import stored
from clarion.cli.common import DbOption, settings_for
from clarion.runtime import open_runtime

_out = Console()


def register(app: typer.Typer) -> None:
    app.command("fake-providers")(fake_providers)


def fake_providers(
    config_out: Annotated[
        Path | None,
        typer.Option("--write-config", help="Write Clarion's provider configuration here."),
    ] = None,
    configure: Annotated[
        bool, typer.Option("--configure", help="Store that configuration in the --db database.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Run APNs, FCM, Web Push, Twilio, webhook and SMTP look-alikes until interrupted.

    They speak the real protocols (HTTP/2 + JWT, OAuth2, VAPID + RFC 8291, SMTP with
    STARTTLS), record what they receive and can be told to fail over their control API:
    POST /_control/<provider>/rules {"match": "...", "status": 503, "for_s": 10}."""
    asyncio.run(_run(config_out, configure, db))


async def _run(config_out: Path | None, configure: bool, db: Path | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="clarion-fakes-"))
    from clarion.fakes.suite import FakeProviders  # only here: every process loads this module

    fakes = await FakeProviders(folder).start()
    config = fakes.clarion_config()
    if config_out is not None:
        await asyncio.to_thread(config_out.write_text, json.dumps(config, indent=2))
    if configure:
        await _store(config, db)
    table = Table("look-alike", "where")
    for name, where in [
        ("APNs (HTTP/2)", config["apns"]["base_url"]),
        ("FCM (HTTP/2)", config["fcm"]["base_url"]),
        ("Web Push, Twilio, webhooks (HTTPS)", f"https://127.0.0.1:{fakes.ports['https']}"),
        ("same, plain HTTP", f"http://127.0.0.1:{fakes.ports['http']}"),
        ("SMTP (STARTTLS)", f"127.0.0.1:{fakes.ports['smtp']}"),
        ("control API", f"http://127.0.0.1:{fakes.ports['http']}/_control/config"),
        ("CA to trust", str(fakes.tls.ca_file)),
    ]:
        table.add_row(name, where)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _out.print(table)
    _out.print("Ctrl-C to stop.")
    await stop.wait()
    await fakes.stop()


async def _store(config: dict[str, dict[str, object]], db: Path | None) -> None:
    from clarion import channels

    runtime = open_runtime(settings_for(db), durable_commits=True)
    try:
        for name, doc in config.items():
            parsed = channels.parse(name, dict(doc))
            await runtime.stores.providers.put(name, stored(parsed), runtime.clock.now())
    finally:
        await runtime.close()
    _out.print(f"Stored {len(config)} provider configurations in {runtime.settings.db}.")
