"""The frame's own HTTP handlers (docs, session, API tokens, settings, upgrades, deploy info, CouchDB
config, credentials), one module per concern; each exposes a ``routes`` table."""
