"""The CouchDB configuration clients may read (the attachments section: cht-conf needs
``compressible_types`` to know which attachment digests it can compare), and the settings Jamii needs of
each CouchDB node (``ensure_at_least``, run by ``scripts/setup_db.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .couch import Couch
from .errors import ServiceUnavailable

# CouchDB 3's built-in [attachments] values: what the server does when its config sets nothing.
ATTACHMENT_DEFAULTS = {
    "compression_level": "8",
    "compressible_types": "text/*, application/javascript, application/json, application/xml",
}


async def attachments(couch: Couch) -> dict[str, str]:
    """The server's ``[attachments]`` config, CouchDB's defaults filling what it does not set."""
    return {**ATTACHMENT_DEFAULTS, **await couch.config_section("attachments")}


@dataclass
class NodeSettings:
    """What ``ensure_at_least`` did: the nodes it raised the setting on, and the cluster's nodes it could not
    reach (down: run it again when they are back)."""

    raised: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


async def ensure_at_least(couch: Couch, section: str, key: str, value: int) -> NodeSettings:
    """Raise a numeric setting to ``value`` on every node of a CouchDB 2/3 cluster where it is lower or unset
    (a higher value an admin chose is kept). A server without ``_membership`` (pouchdb-server, which has no
    such settings) is left alone."""
    done = NodeSettings()
    members = await couch.membership()
    if members is None:
        return done
    live = set(members.get("all_nodes") or ())
    for node in members.get("cluster_nodes") or sorted(live):
        outcome = await raise_on_node(couch, node, section, key, value) if node in live else None
        if outcome is None:
            done.unreachable.append(node)
        elif outcome:
            done.raised.append(node)
    return done


async def raise_on_node(couch: Couch, node: str, section: str, key: str, value: int) -> bool | None:
    """Raise the setting on one node: True if raised, False if it was already at least ``value``, None if the
    node is down (also one that died since ``_membership`` was read: ``Couch.node_config``)."""
    try:
        current = await couch.node_config(node, section, key)
        if isinstance(current, str) and current.strip().isdigit() and int(current) >= value:
            return False
        await couch.node_config(node, section, key, str(value))
    except ServiceUnavailable:
        return None
    return True
