"""``resolve_pending``: pending outgoing messages of a doc are marked ``sent``.

For deployments (and test builds) that must not queue messages for a gateway.
Only ``tasks`` (messages due now), not scheduled ones, as in CHT.
"""

from __future__ import annotations

from typing import Any

from api.cht import messages

from . import Context


class ResolvePending:
    name = "resolve_pending"

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        return bool(doc.get("tasks"))

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        changed = False
        for task in doc.get("tasks") or []:
            if task.get("state") == "pending":
                changed = messages.set_state(task, "sent", ctx.now) or changed
        return changed


transition = ResolvePending()
