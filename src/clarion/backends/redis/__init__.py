"""Redis: the scale-out queues (``broker``, its Lua in ``scripts``) and the hot state put in
front of the PostgreSQL stores (``stores``)."""
