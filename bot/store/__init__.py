"""Everything the bot keeps, and the only place that speaks SQL.

`engine` is the SQLite file, its schema and the group commit; each other module is the queries of
one kind of record (deliveries, the outbox, idempotency keys, runs and jobs), plus retention and
backups. The rest of the bot calls these functions through `Store.call`, so a rule about the
records (what may be replayed, who may see a run) holds for the server and the command line alike.
"""
