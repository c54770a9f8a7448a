"""Offline users replicate through the API: the CouchDB protocol, filtered to what they may see.

The **visible set** (``api/cht/replication/scope.py``) is the ids of the docs an
offline user may have: their part of the hierarchy to their replication
depth, the reports about it, global docs (settings, forms), their own
user-settings doc and the client design doc. Every read answers from it and
every write is checked against it:

* ``_changes`` from the start (a first sync) is the feed filtered by CouchDB
  to the visible ids (``_doc_ids``), all at once. From a later ``since`` it
  scans the feed and keeps the changes of visible docs, plus deletions of docs
  the user could see before they were deleted (judged from the revision before
  the deletion) — which a ``_doc_ids`` filter could not find, since deleted
  docs are in no view. Sequences are passed on as CouchDB gave them, never
  compared. ``feed=longpoll`` waits for the next change of the database (one
  shared longpoll per process), with heartbeats.
* ``_all_docs``, ``_bulk_get``, ``_revs_diff`` and reads by id answer for
  visible docs only; any other doc is "missing", exactly as if it did not
  exist.
* writes are accepted when the user may see the stored doc (if any) and the
  new version, holds ``can_edit`` and passes ``api/cht/replication/write_rules.py``; refused
  docs come back as ``{"id", "error": "forbidden"}`` in request order while
  the others are written.

A replication asks for hundreds of batches, so each user's set is kept and
reused for as long as the database's ``update_seq`` is unchanged (then it is
still exact); any write anywhere makes the next request compute it again.

Modules: ``visible_set`` (each user's set, kept and brought forward), ``shared`` (work shared by
concurrent requests), ``reads``, ``changes``, ``writes`` and ``sync`` (the protocol for offline users),
``scope`` (a user's set computed from the views), ``write_rules``, ``limit`` (the replication limit log),
``notifier`` (one shared longpoll), ``bodies`` (what each endpoint takes as a body), ``proxy`` (passing
requests on to CouchDB) and ``handlers`` (the routes).
"""
