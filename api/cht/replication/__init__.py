"""Offline devices: the ``/medic`` proxy, each user's visible set, the write rules and the replication
helpers (get-ids, get-deletes, the replication limit log)."""
