"""Devices: where push and webhook notifications go. Tokens are never shown whole."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter

from clarion.api.channel_schemas import DeviceIn, DeviceList, DeviceOut
from clarion.api.deps import Admin, Services
from clarion.api.format import iso
from clarion.api.routes.users import user_id_of
from clarion.api.schemas import ErrorOut
from clarion.channels import signing
from clarion.channels.ssrf import PrivateTargetError, check_target
from clarion.errors import FieldProblem, InputError, NotFoundError
from clarion.models import Platform
from clarion.stores.records import Device

router = APIRouter(prefix="/v1/users", tags=["devices"])


def mask(token: str) -> str:
    """Enough to tell tokens apart in a support call, never enough to use one."""
    return token if len(token) <= 12 else f"{token[:6]}…{token[-4:]}"


def _out(device: Device, secret: str | None = None, replaced: list[str] | None = None) -> DeviceOut:
    return DeviceOut(
        device_id=device.device_id,
        platform=device.platform,
        token=mask(device.token),
        state=device.state,
        app_version=device.app_version,
        registered_at=iso(device.registered_at),
        last_seen=iso(device.last_seen),
        invalid_reason=device.reason,
        secret=secret,
        replaced=replaced or [],
    )


@router.post(
    "/{user_id}/devices",
    status_code=201,
    response_model=DeviceOut,
    responses={400: {"model": ErrorOut}},
    summary="Register (or refresh) a device",
)
async def register(user_id: str, body: DeviceIn, _: Admin, svc: Services) -> DeviceOut:
    uid = user_id_of(user_id)
    token, meta, secret = _address(body, svc.runtime.settings.allow_private_targets)
    device_id = body.device_id or hashlib.sha256(token.encode()).hexdigest()[:16]
    now = svc.runtime.clock.now()
    device = Device(
        uid,
        device_id,
        body.platform,
        token,
        meta,
        body.app_version,
        registered_at=now,
        last_seen=now,
    )
    replaced = await svc.runtime.stores.devices.register(
        device, max_per_user=svc.runtime.settings.max_devices_per_user
    )
    return _out(device, secret=secret, replaced=replaced)


def _address(body: DeviceIn, allow_private: bool) -> tuple[str, dict[str, object], str | None]:
    """(token or endpoint, extra data, a new secret to show once) for the platform."""
    problems: list[FieldProblem] = []
    wanted = {
        Platform.IOS: "token",
        Platform.ANDROID: "token",
        Platform.WEB: "subscription",
        Platform.WEBHOOK: "url",
    }[body.platform]
    for field in ("token", "subscription", "url"):
        given = getattr(body, field) is not None
        if field == wanted and not given:
            problems.append(FieldProblem(field, f"required for platform {body.platform.value}"))
        elif field != wanted and given:
            problems.append(FieldProblem(field, f"not used by platform {body.platform.value}"))
    if body.secret is not None and body.platform is not Platform.WEBHOOK:
        problems.append(FieldProblem("secret", "only webhook devices have a secret"))
    if problems:
        raise InputError(problems)
    if body.platform is Platform.IOS and body.token is not None:
        _check_hex(body.token)
    if body.platform is Platform.WEB:
        assert body.subscription is not None
        _check_url("subscription.endpoint", body.subscription.endpoint, allow_private)
        keys = body.subscription.keys
        return (
            body.subscription.endpoint,
            {"keys": {"p256dh": keys.p256dh, "auth": keys.auth}},
            None,
        )
    if body.platform is Platform.WEBHOOK:
        assert body.url is not None
        _check_url("url", body.url, allow_private)
        secret = body.secret or signing.new_secret()
        if not signing.is_secret(secret):
            raise InputError.single("secret", "must be whsec_ followed by base64 (≥ 16 bytes)")
        return body.url, {"secrets": [secret]}, None if body.secret else secret
    assert body.token is not None
    return body.token, {}, None


def _check_hex(token: str) -> None:
    try:
        bytes.fromhex(token)
    except ValueError:
        raise InputError.single("token", "an APNs device token is hexadecimal") from None


def _check_url(field: str, url: str, allow_private: bool) -> None:
    try:
        check_target(url, allow_private=allow_private)
    except PrivateTargetError as exc:
        raise InputError.single(field, f"refused: {exc}") from None


@router.get("/{user_id}/devices", response_model=DeviceList, summary="A user's devices")
async def list_devices(user_id: str, _: Admin, svc: Services) -> DeviceList:
    devices = await svc.runtime.stores.devices.of_user(user_id_of(user_id))
    return DeviceList(items=[_out(d) for d in devices])


@router.delete(
    "/{user_id}/devices/{device_id}",
    status_code=204,
    responses={404: {"model": ErrorOut}},
    summary="Forget a device",
)
async def remove(user_id: str, device_id: str, _: Admin, svc: Services) -> None:
    if not await svc.runtime.stores.devices.remove(user_id_of(user_id), device_id):
        raise NotFoundError(f"no device {device_id!r} for user {user_id!r}")
