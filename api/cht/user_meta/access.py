"""What a user may do with their own meta database through the API: what a device's sync needs, nothing more.

In CHT the owner is the database's admin in CouchDB's ``_security`` and may also
change its design docs and security, compact it or purge it. Jamii allows the
replication protocol and document reads and writes only (deny by default):
anything else is refused to the owner, and left to server admins.

Also here: the rule of the meta database's design doc (which pouchdb-server does
not enforce), applied to every writer: a deletion marked ``purged`` (a device's
record of what it purged locally) is never stored.
"""

from __future__ import annotations

from typing import Any, Mapping

PURGED = "Purged documents should not be written to CouchDB!"
NOT_ALLOWED = "You are not allowed to do this in your meta database"

# endpoint -> methods an owner may use (``_local/...``, ``_design/...`` and documents are judged below)
OWNER_ENDPOINTS = {
    "_all_docs": {"GET", "HEAD", "POST"},
    "_bulk_docs": {"POST"},
    "_bulk_get": {"POST"},
    "_revs_diff": {"POST"},
    "_missing_revs": {"POST"},
    "_changes": {"GET", "HEAD", "POST"},
    "_ensure_full_commit": {"POST"},
    "_security": {"GET", "HEAD"},
    "_revs_limit": {"GET", "HEAD"},
}
READ = {"GET", "HEAD"}


def owner_refusal(method: str, rest: str) -> str | None:
    """Why the owner may not make this request (``rest``: the path inside the database), or None."""
    parts = rest.split("/") if rest else []
    if not parts:
        return None if method in READ | {"POST"} else NOT_ALLOWED  # PUT (create) is answered before this
    head = parts[0]
    if head == "_local":
        return None if len(parts) == 2 and method in READ | {"PUT", "DELETE"} else NOT_ALLOWED
    if head == "_design":
        if method in READ:
            return None
        if method == "POST" and len(parts) == 4 and parts[2] == "_view":
            return None
        return NOT_ALLOWED
    if head.startswith("_"):
        return None if len(parts) == 1 and method in OWNER_ENDPOINTS.get(head, set()) else NOT_ALLOWED
    if len(parts) == 1:
        return None if method in READ | {"PUT", "DELETE"} else NOT_ALLOWED
    return None if method in READ else NOT_ALLOWED  # attachments: read only


def purged_stub(doc: Any) -> bool:
    """A device's record of a local purge: a deletion carrying ``purged``."""
    return isinstance(doc, Mapping) and bool(doc.get("_deleted")) and bool(doc.get("purged"))
