"""``clarion doctor`` finds each misconfiguration and says how to fix it: an unreachable
broker or store, a channel with no provider, an unreadable CA file, email links that point
at this machine."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from clarion import channels
from clarion.channels.config import stored
from clarion.config import Settings
from clarion.doctor import Finding, diagnose
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import open_runtime


def _problems(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings if not f.ok}


async def _configure(settings: Settings, fakes: FakeProviders, ca_file: Path) -> None:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        spec = TypeSpec("reply", Priority.P1, (Channel.IN_APP, Channel.PUSH, Channel.EMAIL))
        await runtime.stores.types.put(spec, now)
        smtp = {**fakes.clarion_config()["smtp"], "ca_file": str(ca_file)}
        await runtime.stores.providers.put("smtp", stored(channels.parse("smtp", smtp)), now)
    finally:
        await runtime.close()


def test_doctor_finds_a_missing_provider_an_unreadable_ca_and_local_links(
    tmp_path: Path, fakes: FakeProviders
) -> None:
    ca = tmp_path / "private-ca.pem"
    ca.write_bytes(fakes.tls.ca_file.read_bytes())
    settings = Settings(db=tmp_path / "doc.db")
    asyncio.run(_configure(settings, fakes, ca))
    ca.unlink()  # moved away after it was configured
    found = _problems(asyncio.run(diagnose(settings)))
    assert set(found) == {"providers: push", "ca_file: smtp", "public_url"}
    assert "PUT /v1/providers/{name} of kind apns or fcm or webpush" in found["providers: push"].fix
    assert str(ca) in found["ca_file: smtp"].detail
    assert "CLARION_PUBLIC_URL" in found["public_url"].fix
    fixed = Settings(db=tmp_path / "doc.db", public_url="https://notify.example.com")
    assert "public_url" not in _problems(asyncio.run(diagnose(fixed)))

    done = subprocess.run(
        [sys.executable, "-m", "clarion", "doctor", "--db", str(tmp_path / "doc.db"), "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is False
    assert {f["check"] for f in doc["findings"] if not f["ok"]} == set(found)


def test_doctor_finds_unreachable_backends(tmp_path: Path, redis_url: str) -> None:
    no_redis = Settings(db=tmp_path / "a.db", broker="redis://127.0.0.1:1/0")
    (finding,) = asyncio.run(diagnose(no_redis))
    assert (finding.check, finding.ok) == ("backends", False)
    assert "cannot reach the broker" in finding.detail
    no_postgres = Settings(
        db=tmp_path / "b.db", broker=redis_url, store="postgresql://postgres@127.0.0.1:1/none"
    )
    (finding,) = asyncio.run(diagnose(no_postgres))
    assert not finding.ok
    assert "127.0.0.1:1" in finding.detail
    done = subprocess.run(
        [sys.executable, "-m", "clarion", "doctor", "--db", str(tmp_path / "c.db"),
         "--broker", "redis://127.0.0.1:1/0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "1 thing(s) to fix" in done.stdout
