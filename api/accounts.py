"""An account's identity: the random ``account_id`` of its ``_users`` doc.

A user name can be reused: delete a user, create another with the same name. A grant the API
issues to a user (an API token) records the account id and is honoured only while the ``_users``
doc still holds it, so it never passes to a later account of the same name. Users get one when
they are made (``new_id``); a user made some other way (directly in CouchDB, or before there were
account ids) gets one the first time a grant is issued to them (``ensure``).
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping

from .couch import Database
from .errors import Conflict, NotFound

FIELD = "account_id"
USER_PREFIX = "org.couchdb.user:"


def new_id() -> str:
    return secrets.token_hex(16)


def of(user_doc: Mapping[str, Any] | None) -> str | None:
    """The account id of a ``_users`` doc (None for a missing doc, or one made without)."""
    value = user_doc.get(FIELD) if user_doc else None
    return value if isinstance(value, str) and value else None


async def ensure(users: Database, name: str) -> str:
    """The account id of user ``name``, given one now if their doc has none; NotFound without a doc."""
    for _ in range(3):
        doc = await users.get_or_none(USER_PREFIX + name)
        if doc is None:
            raise NotFound(f"{name} is not a user")
        if of(doc):
            return of(doc)  # type: ignore[return-value]
        doc[FIELD] = new_id()
        try:
            await users.put(doc)
            return doc[FIELD]
        except Conflict:
            continue
    raise Conflict(f"The user {name} was changed by someone else at the same time; try again")
