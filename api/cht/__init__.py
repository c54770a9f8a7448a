"""The CHT API: one sub-package per area (contacts, reports, users, messaging, replication, exports,
monitoring), each with its domain modules and its ``handlers.py``.

The modules at this level are CHT's shared vocabulary (contact types, lineage, phone numbers, short ids,
outgoing messages, who sees which document); the areas and the sentinel both use them. Nothing here
imports aiohttp."""
