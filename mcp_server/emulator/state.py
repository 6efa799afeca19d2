"""In-memory store of the emulated project, with a record of every request.

The app mutates it from the uvicorn thread while tests read it from theirs, so every
access goes through one lock and the public views are snapshots.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from mcp_server.protocol import AgentVersion, FileObject


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any | None


@dataclass
class StoredResponse:
    """One Responses API object plus what produced it and what it streamed."""

    response: dict[str, Any]
    request: dict[str, Any]
    image_bytes: bytes | None = None
    events: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    input_items: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    streamed: bool = False
    closed: bool = False
    sent_at: dict[int, float] = field(default_factory=dict[int, float])
    """time.monotonic() at which each event (by sequence number) was first written to a stream."""
    task: asyncio.Task[None] | None = None
    # Live stream readers wait on this; it is swapped for a fresh one after each wake-up.
    waker: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> str:
        return str(self.response.get("status"))


class EmulatorState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._agents: dict[str, list[AgentVersion]] = {}
        self._next_version: dict[str, int] = {}
        self._responses: dict[str, StoredResponse] = {}
        self._files: dict[str, tuple[FileObject, bytes]] = {}

    # ------------------------------------------------------------ requests

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(request)

    def count(self, method: str, path_suffix: str) -> int:
        with self.lock:
            return sum(1 for r in self._requests if r.method == method.upper() and r.path.endswith(path_suffix))

    # ------------------------------------------------------------ agents

    def agent_names(self) -> list[str]:
        with self.lock:
            return list(self._agents)

    def agent_versions(self, name: str) -> list[AgentVersion]:
        with self.lock:
            return list(self._agents.get(name, []))

    def add_agent_version(self, name: str, build: Any) -> AgentVersion:
        """Allocate the next version number and store what `build(version)` returns."""
        with self.lock:
            number = self._next_version.get(name, 1)
            self._next_version[name] = number + 1
            version: AgentVersion = build(str(number))
            self._agents.setdefault(name, []).append(version)
            return version

    def delete_agent_version(self, name: str, version: str) -> bool:
        with self.lock:
            versions = self._agents.get(name, [])
            kept = [v for v in versions if v.version != version]
            if len(kept) == len(versions):
                return False
            if kept:
                self._agents[name] = kept
            else:
                self._drop_agent(name)
            return True

    def delete_agent(self, name: str) -> bool:
        with self.lock:
            if name not in self._agents:
                return False
            self._drop_agent(name)
            return True

    def _drop_agent(self, name: str) -> None:
        self._agents.pop(name, None)
        self._next_version.pop(name, None)

    # ------------------------------------------------------------ responses

    @property
    def responses(self) -> dict[str, StoredResponse]:
        with self.lock:
            return dict(self._responses)

    def get_response(self, response_id: str) -> StoredResponse | None:
        with self.lock:
            return self._responses.get(response_id)

    def put_response(self, response_id: str, stored: StoredResponse) -> None:
        with self.lock:
            self._responses[response_id] = stored

    def pop_response(self, response_id: str) -> StoredResponse | None:
        with self.lock:
            return self._responses.pop(response_id, None)

    def image_bytes(self, response_id: str) -> bytes:
        with self.lock:
            stored = self._responses[response_id]
            if stored.image_bytes is None:
                raise LookupError(f"response {response_id} has no image (status {stored.status})")
            return stored.image_bytes

    # ------------------------------------------------------------ files

    @property
    def files(self) -> dict[str, tuple[FileObject, bytes]]:
        with self.lock:
            return dict(self._files)

    def put_file(self, file: FileObject, content: bytes) -> None:
        with self.lock:
            self._files[file.id] = (file, content)

    def get_file(self, file_id: str) -> tuple[FileObject, bytes] | None:
        with self.lock:
            return self._files.get(file_id)

    def delete_file(self, file_id: str) -> bool:
        with self.lock:
            return self._files.pop(file_id, None) is not None
