"""Server-side purging, as CHT runs it: which docs each offline role set must not keep on its devices.

The sentinel (``sentinel/purging/``) runs the admin's purge function and records,
per unique set of offline roles, the ids its devices must purge: one database
``<medic>-purged-role-<md5 of the sorted roles>`` holding a ``purged:<id>`` doc per
purged doc (CHT's layout, so CHT's tools read it). The API honours those
records here:

* ``names``: the role hash, the database and doc names (shared with the sentinel);
* ``store``: which of a set of ids a purge database lists;
* ``served``: the purged part of an offline user's visible set, kept per user and
  recomputed only when the purge database changes (every read subtracts it;
  ``get-deletes`` lists it);
* ``legacy``: CHT 3.7-4.2's ``/purging`` endpoints; ``handlers``: their routes.

Purging never touches the medic database: a purged doc stays on the server, and
a device may still push its own edits to it.
"""
