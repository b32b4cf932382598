"""Work that starts at a time rather than on a request: recurring sends (cron schedules)
and campaigns. Every worker process runs a scheduler (``scheduler``); the stores make sure
only one of them acts on each due thing."""
