"""The ceiling for push throughput: bare HTTP/2 clients sending one prebuilt APNs request
as fast as the server answers — no store, no JSON, no policy — in as many processes as the
pipeline has workers, so the two are compared like for like."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

from clarion import channels
from clarion.channels import apns
from clarion.channels.h2client import H2Pool, client_tls
from clarion.errors import BackendError

IN_FLIGHT = 1000
"""Requests each client keeps in flight: one delivery batch's worth, like a worker."""
_GET_READY_S = 2.0
"""Every process connects, then all start at the same moment this long after launch."""


def apns_config(doc: dict[str, Any]) -> apns.Config:
    config = channels.parse("apns", dict(doc))
    assert isinstance(config, apns.Config)
    return config


def device_token(i: int) -> str:
    return f"{i:064x}"


def raw_h2_rate(doc: dict[str, Any], token: str, requests: int, *, processes: int) -> float:
    """Requests/s answered 200 by the server, summed over ``processes`` bare clients."""
    start_at = time.time() + _GET_READY_S
    shares = [(doc, token, requests // processes, start_at) for _ in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        finished = pool.starmap(_client, shares)
    return requests // processes * processes / (max(finished) - start_at)


def _client(doc: dict[str, Any], token: str, requests: int, start_at: float) -> float:
    return asyncio.run(_send(doc, token, requests, start_at))


async def _send(doc: dict[str, Any], token: str, requests: int, start_at: float) -> float:
    config = apns_config(doc)
    pool = H2Pool(
        config.base_url, ssl_context=client_tls(config.ca_file), connections=config.connections
    )
    headers = {
        "authorization": f"bearer {token}",
        "apns-topic": config.topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
    }
    body = b'{"aps":{"alert":{"title":"Hello","body":"A bare request"}}}'
    try:
        for _ in range(config.connections):  # open every connection before the clock starts
            await pool.request("POST", f"/3/device/{device_token(0)}", headers, body)
        await asyncio.sleep(max(start_at - time.time(), 0.0))
        for first in range(0, requests, IN_FLIGHT):
            answers = await asyncio.gather(
                *(
                    pool.request("POST", f"/3/device/{device_token(i)}", headers, body)
                    for i in range(first, min(first + IN_FLIGHT, requests))
                )
            )
            if any(a.status != 200 for a in answers):
                raise BackendError("the APNs look-alike refused the bare client's requests")
        return time.time()
    finally:
        await pool.close()
