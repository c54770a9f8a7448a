"""The CouchDB configuration clients may read: the attachments section (cht-conf needs
``compressible_types`` to know which attachment digests it can compare)."""

from __future__ import annotations

from .couch import Couch

# CouchDB 3's built-in [attachments] values: what the server does when its config sets nothing.
ATTACHMENT_DEFAULTS = {
    "compression_level": "8",
    "compressible_types": "text/*, application/javascript, application/json, application/xml",
}


async def attachments(couch: Couch) -> dict[str, str]:
    """The server's ``[attachments]`` config, CouchDB's defaults filling what it does not set."""
    return {**ATTACHMENT_DEFAULTS, **await couch.config_section("attachments")}
