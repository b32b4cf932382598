"""Each backend in one place: ``sqlite`` (the embedded default), ``postgres`` and ``redis``.

A backend package holds what speaks to its server and nothing else:

* its connection and schema (``sqlite.database``, ``postgres.schema``…);
* ``stores``: the stores' protocols (``clarion.stores.base``) implemented on it;
* ``broker``: the queues (``clarion.broker.base``) on it, where it carries them: SQLite's
  own table, Redis streams; PostgreSQL contributes the outbox that feeds Redis
  (``postgres.outbox``).

What is shared by every backend stays beside the protocols: ``clarion.stores`` (records,
row shapes, the rules of accepting an event) and ``clarion.broker`` (the memory broker,
the outbox relay, retry timing).
"""
