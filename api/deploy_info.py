"""Which CHT version Jamii answers as: ``GET /api/deploy-info`` and the ``deploy_info``
of ``_design/medic-client``.

CHT clients read that version to decide how to talk to the server: cht-conf, for
one, searches with Nouveau from 5.0 on (Jamii has views, not Nouveau), needs 4.7
for ``--disable-users`` and adds nools boilerplate below 4.2. The version is a
property of the API code (the protocol it speaks), not of the design docs
installed, so it is a constant here; a Jamii release installed by an upgrade is
recorded beside it as ``release``.
"""

from __future__ import annotations

import time
from typing import Any

from .couch import Database
from .errors import Conflict

# The CHT API level Jamii implements (the newest "Added in" of the CHT docs it was built from).
CHT_VERSION = "4.22.0"
CLIENT_DDOC = "_design/medic-client"


def deploy_info(user: str | None, release: str | None = None) -> dict[str, Any]:
    """A fresh ``deploy_info`` (CHT's fields: ``timestamp`` in ms, ``user``, ``version``)."""
    info: dict[str, Any] = {"timestamp": int(time.time() * 1000), "user": user, "version": CHT_VERSION}
    if release is not None:
        info["release"] = release
    return info


async def read(db: Database) -> dict[str, Any]:
    """What ``GET /api/deploy-info`` answers: the stored record, with the version this code speaks."""
    ddoc = await db.get_or_none(CLIENT_DDOC)
    stored = (ddoc or {}).get("deploy_info")
    return {**(stored if isinstance(stored, dict) else {}), "version": CHT_VERSION}


async def ensure(db: Database, user: str | None) -> bool:
    """Record ``deploy_info`` on the client ddoc unless it already names this version; True when written.

    Fields already there (an upgrade's ``release``) are kept; a second run writes nothing.
    """
    for _ in range(5):
        ddoc = await db.get_or_none(CLIENT_DDOC)
        if ddoc is None:
            return False
        stored = ddoc.get("deploy_info")
        if isinstance(stored, dict) and stored.get("version") == CHT_VERSION:
            return False
        ddoc["deploy_info"] = {**(stored if isinstance(stored, dict) else {}), **deploy_info(user)}
        try:
            await db.put(ddoc)
        except Conflict:
            continue
        return True
    raise Conflict("_design/medic-client kept changing while deploy_info was recorded; try again")
