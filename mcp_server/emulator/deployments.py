"""The project's deployments API (protocol §1.6), served from `EmulatorConfig.deployments`.

Bodies have the recorded shape (REC-IMG entry 0): `type: "ModelDeployment"`, `modelVersion`,
`modelPublisher: "OpenAI"`, `capabilities: {}` for image models and `{"chat_completion": "true"}` for
chat models, `sku: {"name": "GlobalStandard", "capacity": N}`; the headers are `apim-request-id` and
`x-ms-region`, with no `X-Request-ID` (§7.5).
"""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.responses import JSONResponse, Response

from mcp_server.protocol import DEPLOYMENTS_API_VERSION, Deployment, DeploymentSku, is_image_model

from .context import Ctx
from .errors import foundry_error, invalid_payload, not_found, unauthorized

REGION: Final = "West US 2"
MODEL_VERSIONS: Final = {
    "gpt-image-1": "2025-04-15",
    "gpt-image-1-mini": "2025-10-06",
    "gpt-image-1.5": "2025-12-16",
    "gpt-image-2": "2026-04-21",
    "gpt-image-2.5-sunburst": "2026-09-08",
    "gpt-image-2.5-flare": "2026-09-08",
    "gpt-4o": "2024-11-20",
    "gpt-4o-mini": "2024-07-18",
    "gpt-4.1": "2025-04-14",
    "gpt-4.1-mini": "2025-04-14",
    "gpt-4.1-nano": "2025-04-14",
    "o3": "2025-04-16",
    "gpt-5": "2025-08-07",
}
"""Each model's version as Azure lists it (foundry-protocol.md §8.1 and the model catalogue)."""
_DATED: Final = re.compile(r"-(\d{4}-\d{2}-\d{2})$")


def model_version(model: str) -> str:
    """The version of `model`: known, or the date a dated model name ends with, else "1"."""
    dated = _DATED.search(model)
    return MODEL_VERSIONS.get(model.lower()) or (dated.group(1) if dated else "1")


def deployment(name: str, model: str) -> Deployment:
    image = is_image_model(model)
    return Deployment(
        name=name,
        type="ModelDeployment",
        modelName=model,
        modelVersion=model_version(model),
        modelPublisher="OpenAI",
        capabilities={} if image else {"chat_completion": "true"},
        sku=DeploymentSku(name="GlobalStandard", capacity=60 if image else 120),
    )


def _answer(body: dict[str, Any]) -> Response:
    return JSONResponse(body, headers={"x-ms-region": REGION})


def _refuse_if_configured(ctx: Ctx) -> None:
    status = ctx.config.deployments_api_status
    if status == 401:
        raise unauthorized()
    if status == 403:
        raise foundry_error(
            403,
            "PermissionDenied",
            "The principal does not have permission to perform "
            "'Microsoft.CognitiveServices/accounts/AIServices/deployments/read' on this project.",
        )
    if status == 404:
        raise not_found(f"Resource not found: {ctx.request.method} {ctx.request.url.path}")


def _matches(item: Deployment, query: dict[str, str]) -> bool:
    wanted = {
        "modelName": item.model_name,
        "modelPublisher": item.model_publisher,
        "deploymentType": item.type,
    }
    return all(query[key].lower() == (value or "").lower() for key, value in wanted.items() if key in query)


async def list_deployments(ctx: Ctx) -> Response:
    """`GET /deployments?api-version=v1[&modelPublisher&modelName&deploymentType]`, paged by `nextLink`."""
    _refuse_if_configured(ctx)
    ctx.require_api_version(DEPLOYMENTS_API_VERSION)
    items = [deployment(name, model) for name, model in ctx.config.deployments.items()]
    items = [item for item in items if _matches(item, ctx.query)]
    skip_text = ctx.query.get("skip", "0")
    if not skip_text.isdigit():
        raise invalid_payload(f"skip must be a non-negative integer, not {skip_text!r}.", "skip")
    skip = int(skip_text)
    size = ctx.config.deployments_page_size or max(len(items), 1)
    body: dict[str, Any] = {"value": [item.to_wire() for item in items[skip : skip + size]]}
    if skip + size < len(items):
        body["nextLink"] = str(ctx.request.url.include_query_params(skip=skip + size))
    return _answer(body)


async def get_deployment(ctx: Ctx) -> Response:
    """`GET /deployments/{name}?api-version=v1`; an unknown name is a 404 in the Foundry error shape."""
    _refuse_if_configured(ctx)
    ctx.require_api_version(DEPLOYMENTS_API_VERSION)
    name = ctx.params["name"]
    model = ctx.config.model_of(name)
    if model is None:
        raise not_found(f"Deployment {name} not found")
    return _answer(deployment(name, model).to_wire())
