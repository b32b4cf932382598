"""Keeping delivery going when parts fail: provider breakers and send buckets shared by all
workers (``breaker``), the per-worker client that talks to them (``health``), the load level
that decides what to shed (``load``), and the guard that cuts off a sender whose events keep
killing workers (``senders``)."""
