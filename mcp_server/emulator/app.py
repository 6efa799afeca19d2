"""The Starlette application that serves the emulated Foundry project endpoint."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import agents, deployments, files, responses
from .config import EmulatorConfig
from .context import Ctx, Handler
from .endpoint import endpoint, unknown_route
from .faults import InjectedReset
from .state import EmulatorState
from .streaming import StreamDropped

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class _QuietResets:
    """Lets a deliberately broken response end without a logged traceback: the server still drops the
    connection, because the response was started but never completed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except (InjectedReset, StreamDropped):
            return


def _legacy(handler: Handler) -> Handler:
    async def run(ctx: Ctx) -> Response:
        ctx.params["legacy"] = "1"
        return await handler(ctx)

    return run


def _routes() -> list[tuple[str, str, Handler]]:
    project = "/api/projects/{project}"
    v1 = project + "/openai/v1"
    legacy = project + "/openai"
    table: list[tuple[str, str, Handler]] = [
        ("POST", project + "/agents", agents.create_agent),
        ("GET", project + "/agents", agents.list_agents),
        ("GET", project + "/agents/{name}", agents.get_agent),
        ("DELETE", project + "/agents/{name}", agents.delete_agent),
        ("POST", project + "/agents/{name}/versions", agents.create_version),
        ("GET", project + "/agents/{name}/versions", agents.list_versions),
        ("GET", project + "/agents/{name}/versions/{version}", agents.get_version),
        ("DELETE", project + "/agents/{name}/versions/{version}", agents.delete_version),
        ("GET", project + "/deployments", deployments.list_deployments),
        ("GET", project + "/deployments/{name}", deployments.get_deployment),
        ("POST", v1 + "/files", files.upload),
        ("GET", v1 + "/files", files.list_files),
        ("GET", v1 + "/files/{file_id}", files.retrieve),
        ("DELETE", v1 + "/files/{file_id}", files.delete),
        ("GET", v1 + "/files/{file_id}/content", files.content),
    ]
    for base, wrap in ((v1, False), (legacy, True)):
        for method, suffix, handler in (
            ("POST", "/responses", responses.create),
            ("GET", "/responses", responses.list_responses),
            ("GET", "/responses/{response_id}", responses.retrieve),
            ("DELETE", "/responses/{response_id}", responses.delete),
            ("POST", "/responses/{response_id}/cancel", responses.cancel_response),
            ("GET", "/responses/{response_id}/input_items", responses.input_items),
        ):
            table.append((method, base + suffix, _legacy(handler) if wrap else handler))
    return table


def create_app(config: EmulatorConfig, state: EmulatorState | None = None) -> Starlette:
    """Build the app; pass `state` to inspect or pre-seed what it stores."""
    store = state if state is not None else EmulatorState()
    routes = [Route(path, endpoint(handler, store, config), methods=[method]) for method, path, handler in _routes()]
    routes.append(Route("/{path:path}", endpoint(unknown_route, store, config), methods=_ALL_METHODS))
    app = Starlette(routes=routes, middleware=[Middleware(_QuietResets)])
    app.state.emulator_state = store
    app.state.emulator_config = config
    return app
