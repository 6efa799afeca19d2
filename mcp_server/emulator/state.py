"""In-memory store of the emulated project, with a record of every request.

The app mutates it from the uvicorn thread while tests read it from theirs, so every
access goes through one lock and the public views are snapshots.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from mcp_server.protocol import AgentVersion, FileObject

from .fault_names import check_fault


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


@dataclass(frozen=True)
class PendingFault:
    """A scheduled fault: the next `remaining` requests with `method` (or any, for "*") and a path ending
    with `path` get it."""

    fault: str
    method: str
    path: str
    remaining: int

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and path.endswith(self.path)


class EmulatorState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._agents: dict[str, list[AgentVersion]] = {}
        self._next_version: dict[str, int] = {}
        self._responses: dict[str, StoredResponse] = {}
        self._files: dict[str, tuple[FileObject, bytes]] = {}
        self._faults: list[PendingFault] = []

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

    # ------------------------------------------------------------ faults

    def inject(self, fault: str, *, method: str = "POST", path: str = "/openai/v1/responses", times: int = 1) -> None:
        """Give `fault` to the next `times` requests whose method matches (`"*"`: any) and whose path ends
        with `path`. Schedules are consumed first in, first out; unknown fault names raise ValueError."""
        check_fault(fault)
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self.lock:
            self._faults.append(PendingFault(fault, method.upper(), path, times))

    def pending_faults(self) -> list[PendingFault]:
        with self.lock:
            return list(self._faults)

    def take_fault(self, method: str, path: str) -> str | None:
        """Consume one use of the first scheduled fault that matches this request."""
        with self.lock:
            for index, pending in enumerate(self._faults):
                if pending.matches(method, path):
                    if pending.remaining > 1:
                        self._faults[index] = dataclasses.replace(pending, remaining=pending.remaining - 1)
                    else:
                        del self._faults[index]
                    return pending.fault
            return None

    # ------------------------------------------------------------ a throw-away copy

    def sandbox(self) -> EmulatorState:
        """A detached copy: whatever a request does to it leaves this state untouched (no faults, no requests).

        Copied responses are closed, so a stream read from the copy ends with the events logged so far."""
        copy = EmulatorState()
        with self.lock:
            copy._agents = {name: list(versions) for name, versions in self._agents.items()}
            copy._next_version = dict(self._next_version)
            copy._files = dict(self._files)
            copy._responses = {
                key: dataclasses.replace(
                    stored,
                    events=list(stored.events),
                    sent_at=dict(stored.sent_at),
                    closed=True,
                    task=None,
                    waker=asyncio.Event(),
                )
                for key, stored in self._responses.items()
            }
        return copy

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

    def forget_response(self, response_id: str) -> bool:
        """Make the service no longer have this response, as if it expired: later retrieves, resumes, cancels
        and deletes get the real 404, and listings leave it out. A generation still running finishes unseen.
        False if there was no such response. Safe to call from any thread."""
        return self.pop_response(response_id) is not None

    def find_responses(self, **metadata: str) -> list[StoredResponse]:
        """The stored responses whose `metadata` holds every given pair, oldest first."""
        with self.lock:
            stored = list(self._responses.values())
        return [s for s in stored if all((s.response.get("metadata") or {}).get(k) == v for k, v in metadata.items())]

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
