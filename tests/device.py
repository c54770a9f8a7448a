"""Drive a stock PouchDB "device" (tests/pouchdb_device.js) from async tests."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

from api.config import ROOT


class DeviceError(Exception):
    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status


class Device:
    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, url: str, user: str, password: str) -> "Device":
        node = shutil.which("node")
        assert node, "Node.js is needed for the replication tests"
        process = await asyncio.create_subprocess_exec(
            node, str(ROOT / "tests" / "pouchdb_device.js"), cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 * 1024 * 1024)
        device = cls(process)
        await device.call("connect", url=url, user=user, password=password)
        return device

    async def call(self, op: str, timeout: float = 30, **args: Any) -> Any:
        async with self._lock:
            assert self.process.stdin and self.process.stdout
            self.process.stdin.write((json.dumps({"op": op, "args": args}) + "\n").encode())
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        answer = json.loads(line)
        if not answer["ok"]:
            raise DeviceError(answer["error"], answer.get("status"))
        return answer["result"]

    async def close(self) -> None:
        if self.process.returncode is None:
            if self.process.stdin:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
