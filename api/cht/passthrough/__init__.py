"""CHT's pass-through to CouchDB: every request no route of the API serves (``/_users``, ``/_all_dbs``,
``/medic-sentinel``, ``/medic-logs``, ``/medic-vault``, ``/medic/...`` paths the ``/medic`` routes leave...).

cht-core proxies such requests to CouchDB with the caller's own credentials, so CouchDB's permissions
decide. Jamii's CouchDB is used with the API's admin credentials only, so ``rules`` decides instead, per
path and caller, and denies by default; what may go on is passed on by ``api/cht/replication/proxy.py``
(as admin, bodies streamed both ways, checked by ``api/couch_guards.py`` first). ``handlers`` holds the
one catch-all route, which ``api/routes.py`` adds after every other.
"""
