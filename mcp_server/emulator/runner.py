"""Running the emulator: in a background thread (tests, the demo) or blocking (the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from types import TracebackType

import uvicorn

from .app import create_app
from .config import EmulatorConfig
from .state import EmulatorState

logger = logging.getLogger(__name__)

_STOP_TIMEOUT = 10.0


def _bind(host: str, port: int) -> socket.socket:
    # Binding here, before uvicorn starts, means the port is known at once and early connections
    # simply wait in the listen backlog: callers never need to poll for readiness.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it Nagle + delayed ACK add ~40 ms to keep-alive requests.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _initial_state(config: EmulatorConfig) -> EmulatorState:
    state = EmulatorState()
    for fault, times in config.faults:
        state.inject(fault, times=times)
    return state


class _Server(uvicorn.Server):
    """uvicorn's server, woken at once by `stop` instead of noticing `should_exit` on its next 0.1 s tick."""

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def wake(self) -> None:
        self.should_exit = True
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self._loop.call_soon_threadsafe(self._wake.set)


def _server(config: EmulatorConfig, state: EmulatorState) -> _Server:
    app = create_app(config, state)
    uv_config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    return _Server(uv_config)


class RunningEmulator:
    """An emulator serving on a daemon thread; a context manager, and `stop()` may be called twice."""

    def __init__(self, config: EmulatorConfig, host: str, port: int) -> None:
        self.config = config
        self.state = _initial_state(config)
        self._socket = _bind(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.port}"
        self.endpoint = f"{self.base_url}/api/projects/{config.project}"
        self._server = _server(config, self.state)
        self._thread = threading.Thread(target=self._run, name=f"foundry-emulator-{self.port}", daemon=True)
        self._stopped = False
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except Exception:
            logger.exception("emulator on %s stopped with an error", self.base_url)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.wake()
        self._thread.join(_STOP_TIMEOUT)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(_STOP_TIMEOUT)
        self._socket.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningEmulator(endpoint={self.endpoint!r})"


def start_emulator(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> RunningEmulator:
    return RunningEmulator(config or EmulatorConfig(), host, port)


def serve_emulator(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted (Ctrl-C); the endpoint is logged, stdout stays untouched."""
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    logger.warning(
        "Foundry emulator listening: endpoint http://%s:%d/api/projects/%s", host, bound_port, config.project
    )
    if config.faults:
        shown = ", ".join(f"{name} x{times}" for name, times in config.faults)
        logger.warning("Faults scheduled for the next responses creates: %s", shown)
    server = _server(config, _initial_state(config))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
