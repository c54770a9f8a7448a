"""Jamii API: one aiohttp process serving the CHT, Foci, Datapoints and Spatial units APIs on CouchDB."""

__version__ = "0.1.0"
