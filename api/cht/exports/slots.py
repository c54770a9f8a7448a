"""How many exports of each kind stream at once in one API process.

An export reads every matching doc and holds its connection for as long as
the client reads. Left unbounded, exports and the many short requests beside
them slow each other until clients time out; a few at a time keep the process
answering everyone and let the exports finish. One more is answered at once
with 503 and ``Retry-After``, never left waiting until the client gives up.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from api.errors import ServiceUnavailable

RETRY_AFTER_SECONDS = 5


class ExportSlots:
    def __init__(self, per_kind: int, retry_after: int = RETRY_AFTER_SECONDS):
        self.per_kind = per_kind  # 0: no limit
        self.retry_after = retry_after
        self.running: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, kind: str) -> Iterator[None]:
        """A slot for one export of ``kind`` while the block runs; ServiceUnavailable when none is free."""
        if self.per_kind and self.running.get(kind, 0) >= self.per_kind:
            raise ServiceUnavailable(f"{self.per_kind} {kind} export(s) are running already; try again in "
                                     f"{self.retry_after} seconds", retry_after=self.retry_after)
        self.running[kind] = self.running.get(kind, 0) + 1
        try:
            yield
        finally:
            self.running[kind] -= 1
