"""The load level from queue depths: what ingest refuses and how fast workers take what."""

from __future__ import annotations

from clarion.models import Priority
from clarion.resilience.load import LoadLevel, LoadMonitor, evaluation_depth, measure


def test_levels_follow_the_backlog_and_ignore_fanout_and_status() -> None:
    depths = {"fanout.p2": 900, "status.p1": 900, "evaluate.p2": 40, "push.p1": 9}
    load = measure(depths, shed_p2=50, shed_p1=100)
    assert (load.level, load.backlog) == (LoadLevel.NORMAL, 49)
    assert measure(depths | {"email.p2": 1}, shed_p2=50, shed_p1=100).level is LoadLevel.SHED_P2
    assert measure({"evaluate.p2": 100}, shed_p2=50, shed_p1=100).level is LoadLevel.SHED_P1
    assert evaluation_depth(load, Priority.P2) == 40


def test_p0_is_never_refused_and_p1_only_at_the_top_level() -> None:
    shed_p2 = measure({"evaluate.p2": 60}, shed_p2=50, shed_p1=100)
    shed_p1 = measure({"evaluate.p2": 120}, shed_p2=50, shed_p1=100)
    assert [shed_p2.refuses(p) for p in Priority] == [False, False, True]
    assert [shed_p1.refuses(p) for p in Priority] == [False, True, True]


def test_less_urgent_work_slows_only_while_more_urgent_work_waits() -> None:
    alone = measure({"evaluate.p2": 120}, shed_p2=50, shed_p1=100)
    assert alone.pace(Priority.P2) == 1.0  # a campaign by itself runs at full speed
    busy = measure({"evaluate.p2": 120, "push.p0": 1}, shed_p2=50, shed_p1=100)
    assert [busy.pace(p) for p in Priority] == [1.0, 0.5, 0.25]
    milder = measure({"evaluate.p2": 60, "push.p1": 1}, shed_p2=50, shed_p1=100)
    assert [milder.pace(p) for p in Priority] == [1.0, 1.0, 0.5]


async def test_the_monitor_reads_depths_at_most_once_a_second() -> None:
    reads = []
    now = [0.0]

    async def depths() -> dict[str, int]:
        reads.append(now[0])
        return {"evaluate.p1": len(reads)}

    monitor = LoadMonitor(depths, lambda: now[0], shed_p2=10, shed_p1=20)
    assert (await monitor.current()).backlog == 1
    now[0] = 0.5
    assert (await monitor.current()).backlog == 1
    now[0] = 1.0
    assert (await monitor.current()).backlog == 2
