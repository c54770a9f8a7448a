"""Per-user meta databases, as CHT runs them: ``<medic>-user-<escaped name>-meta``.

A device keeps a second database for what is its user's alone (feedback,
telemetry, read marks) and syncs it with the server every half hour. CHT makes
the server's copy on the device's first ``PUT /medic-user-<name>-meta/`` (PouchDB's
setup of a database it cannot find), not when the user is made, and keeps it when
the user is deleted; Jamii does the same. The sentinel copies feedback and
telemetry into ``medic-users-meta`` every night (``sentinel.users_meta``), where the
exports and monitoring read them.

* ``names``: CHT's escaping of user names into database names;
* ``store``: making a meta database (design doc, ``_security``);
* ``access``: what a user may do with their own (deny by default);
* ``handlers``: the routes. Nobody but its owner and admins reaches a meta database.
"""
