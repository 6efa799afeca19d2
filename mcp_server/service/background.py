"""Work that outlives the tool call that started it: finishing generations whose caller left."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

logger = logging.getLogger(__name__)


class BackgroundJobs:
    """Runs jobs in the server's lifespan task group and lets shutdown wait for them, within a bound."""

    def __init__(self, task_group: TaskGroup) -> None:
        self._tg = task_group
        self._active = 0
        self._idle = anyio.Event()
        self._idle.set()

    def start(self, job: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if self._active == 0:
            self._idle = anyio.Event()
        self._active += 1
        self._tg.start_soon(self._run, job, args)

    async def _run(self, job: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await job(*args)
        except Exception:
            logger.exception("Background job %s failed", getattr(job, "__name__", job))
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for running jobs; True when none is left."""
        with anyio.move_on_after(timeout):
            await self._idle.wait()
        return self._active == 0
