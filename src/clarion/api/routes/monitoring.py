"""What monitors ask: ``GET /metrics`` (Prometheus), ``GET /v1/health`` (the process is
alive) and ``GET /v1/ready`` (it can do its job; 503 with the reasons when not).

None of them needs a key: they say nothing about anyone (no user or event appears in a
metric label), and a load balancer or Prometheus asks without one. Put them behind the
network's own rules if the queue depths of your deployment are nobody's business.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from clarion import metrics, readiness
from clarion.api.deps import Services
from clarion.api.operation_schemas import HealthOut, ReadyOut

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format), every process of this deployment",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}}},
)
async def scrape(svc: Services) -> Response:
    runtime = svc.runtime
    now = runtime.clock.now()
    broker = runtime.broker
    campaigns = await runtime.stores.campaigns.listed(None)
    snapshot = metrics.Snapshot(
        depths=await broker.depths(),
        oldest_age_s={t: now - at for t, at in (await broker.oldest(now)).items()},
        breakers={
            name: h.state for name, h in (await runtime.stores.provider_health.all()).items()
        },
        dead_letters=await broker.dead_letter_count(),
        campaigns=dict(Counter(c.state.value for c in campaigns)),
        campaign_targeted={c.id: c.targeted for c in campaigns if c.state.value == "running"},
    )
    return Response(metrics.exposition(snapshot), media_type=metrics.CONTENT_TYPE)


@router.get("/v1/health", response_model=HealthOut, summary="Alive (the process answers)")
async def health() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/v1/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut}},
    summary="Ready: store and queues answer, workers check in, no stage stuck",
)
async def ready(svc: Services) -> Response:
    found = await readiness.check(svc.runtime)
    body = ReadyOut(
        status="ready" if found.ready else "not_ready",
        problems=found.problems,
        workers=found.workers,
        oldest_seconds={t: round(s, 3) for t, s in found.oldest_s.items()},
    )
    return JSONResponse(body.model_dump(), status_code=200 if found.ready else 503)
