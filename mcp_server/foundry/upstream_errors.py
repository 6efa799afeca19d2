"""What Foundry's error answers mean, as our errors with a message that says what to do next.

The class and the hint follow the HTTP status and the body's `code`, `type` and `param`, never the
wording of its message, which the service changes freely (and translates). The bodies come in
several shapes (protocol §7.1): OpenAI's `{message, type, param, code}`; Foundry's, with `details`
and `additionalInfo.request_id`; Azure's content-filter forms (`innererror`, `content_filters[]`,
`moderation_details`, §4.1); and the image tool's, where `type` and `code` swap roles (§7.4).
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

import httpx2
from pydantic import ValidationError

from mcp_server.errors import (
    AuthenticationError,
    ContentFilteredError,
    FoundryImageError,
    NotFoundError,
    RateLimitedError,
    ServiceRefusedError,
)
from mcp_server.foundry.retry import Clock, server_delay
from mcp_server.protocol import IMAGE_DEPLOYMENT_HEADER, ErrorBody, ErrorDetail

GENERIC_400_HINT: Final = (
    "Foundry gives this generic error (no code, no param) when the image deployment header is missing or wrong: "
    "check AZURE_AI_IMAGE_DEPLOYMENT_NAME."
)
DEPLOYMENT_HINT: Final = (
    "Check AZURE_AI_IMAGE_DEPLOYMENT_NAME (the image model deployment, e.g. gpt-image-2) and "
    "AZURE_AI_MODEL_DEPLOYMENT_NAME (the agent's chat model, e.g. gpt-4.1) against the deployments "
    "in your Foundry project."
)
HEADER_HINT: Final = (
    f"Set AZURE_AI_IMAGE_DEPLOYMENT_NAME (or --image-deployment) to your project's image model deployment; "
    f"the server sends it as the {IMAGE_DEPLOYMENT_HEADER} header, which a proxy on the way must not remove."
)
AGENT_FIELD_HINT: Final = (
    "With an agent, these settings belong in the agent version; this is a defect of foundry-image-mcp or a change "
    "in Foundry. Update the server, and report it if it persists."
)
REPHRASE: Final = "Rephrase the prompt without the flagged content and try again."
AUTH_HINT: Final = (
    "Check AZURE_AI_API_KEY, or unset it and sign in with `az login`; the identity needs the "
    "'Azure AI User' role on the Foundry project."
)
AUTH_HINTS: Final = {
    "preview_feature_required": "This Foundry feature is in preview and must be enabled for the project."
}

IMAGE_TOOL_ERROR: Final = "image_generation_user_error"
INVALID_PAYLOAD: Final = "invalid_payload"
FILTER_CODES: Final = frozenset(
    {
        "content_filter",
        "contentfilter",
        "moderation_blocked",
        "image_content_policy_violation",
        "content_policy_violation",
    }
)
FILTER_INNER_CODES: Final = frozenset({"ResponsibleAIPolicyViolation"})
MODERATION_CODE: Final = "moderation_blocked"
AGENT_FIELDS: Final = frozenset({"tools", "instructions", "temperature", "top_p", "text", "reasoning"})
"""Request fields Foundry refuses with `invalid_payload` "Not allowed when agent is specified." (protocol §3.2)."""
RESPONSE_ROUTE: Final = re.compile(r"/openai/(?:v1/)?responses/([^/]+)")


def request_id_of(response: httpx2.Response, detail: ErrorDetail | None) -> str | None:
    """The id to quote to Azure support, whichever the service sent: `additionalInfo.request_id` in a Foundry
    error body (32 hex; such answers carry no `X-Request-ID`), else `X-Request-ID` (a UUID on the Responses
    API, 32 hex on agents CRUD), else `apim-request-id` (a UUID on every answer) (protocol §7.5)."""
    if detail is not None and detail.additional_info:
        rid = detail.additional_info.get("request_id")
        if isinstance(rid, str) and rid:
            return rid
    for header in ("x-request-id", "apim-request-id", "x-ms-request-id"):
        if response.headers.get(header):
            return response.headers[header]
    return None


def _parse(response: httpx2.Response) -> tuple[ErrorDetail | None, list[dict[str, Any]]]:
    """The body's `error` and any `content_filters` array, beside or inside it."""
    try:
        body = ErrorBody.model_validate_json(response.content)
    except (ValidationError, ValueError):
        return None, []
    return body.error, [*(body.content_filters or []), *(body.error.content_filters or [])]


def error_from_response(response: httpx2.Response, what: str, *, now: Clock = time.time) -> FoundryImageError:
    """Map an error status onto the hierarchy, with a message that says what to do next."""
    status = response.status_code
    detail, filters = _parse(response)
    code = detail.code if detail else None
    upstream_message = (detail.message if detail else "") or response.reason_phrase or "no message"
    wait = server_delay(response.headers, now)
    common: dict[str, Any] = {
        "status": status,
        "request_id": request_id_of(response, detail),
        "upstream_code": code,
        "upstream_param": detail.param if detail else None,
        "retry_after": wait,
    }
    said = f"Foundry refused to {what} (HTTP {status}{', ' + code if code else ''}): {upstream_message}"
    if status in (401, 403):
        return AuthenticationError(said + ".", hint=AUTH_HINTS.get(code or "", AUTH_HINT), **common)
    if status == 404:
        return _not_found(response, code, said, upstream_message, common)
    if status == 429:
        when = f"Foundry asked to wait {seconds(wait)} s before retrying" if wait is not None else "Wait a minute"
        return RateLimitedError(
            f"Foundry is rate limiting requests (HTTP 429): {upstream_message}",
            hint=f"The quota of the deployment is used up for now. {when}, then try again.",
            **common,
        )
    if status >= 500:
        asked = f" Foundry asked to wait {seconds(wait)} s before retrying." if wait is not None else ""
        hint = "This is a service-side failure; try again shortly." + asked
        return ServiceRefusedError(said + ".", hint=hint, **common)
    if detail is not None and is_content_filter(detail, filters):
        return filtered_error(detail, filters, common)
    if detail is not None and status == 400:
        special = _known_refusal(detail, said, common)
        if special is not None:
            return special
    return ServiceRefusedError(said, hint=refusal_hint(status, detail), **common)


def seconds(value: float) -> str:
    """A wait as the hints write it: whole seconds, or tenths below ten (`30`, `2.5`, `0.1`)."""
    return f"{round(value):d}" if value >= 10 else f"{round(value, 1):g}"


def _not_found(
    response: httpx2.Response, code: str | None, said: str, upstream_message: str, common: dict[str, Any]
) -> NotFoundError:
    if (code or "").lower() == "deploymentnotfound":
        message = f"Foundry has no deployment with that name: {upstream_message}"
        return NotFoundError(message, hint=DEPLOYMENT_HINT, code="deployment_not_found", **common)
    route = RESPONSE_ROUTE.search(_path_of(response))
    if route is not None:
        # A response that expired or was deleted: never taken for a lost agent version (which would start again).
        return NotFoundError(
            f"Foundry no longer has the response {route.group(1)} (HTTP 404): {upstream_message}",
            hint="It expired or was deleted; generate the image again.",
            code="response_not_found",
            **common,
        )
    return NotFoundError(said + ".", hint="Check AZURE_AI_PROJECT_ENDPOINT and AZURE_AI_AGENT_NAME.", **common)


def _path_of(response: httpx2.Response) -> str:
    try:
        return response.request.url.path
    except RuntimeError:  # a response built without its request (tests)
        return ""


def _known_refusal(detail: ErrorDetail, said: str, common: dict[str, Any]) -> ServiceRefusedError | None:
    """The 400s whose meaning is known from their code, type and param, each with its own message."""
    param = detail.param or ""
    if detail.type == IMAGE_TOOL_ERROR and param == "tools" and detail.code == "invalid_request_error":
        # Azure's explicit form of a missing image deployment header (protocol §7.4): type and code swapped.
        return ServiceRefusedError(
            f"Foundry was not told which image deployment to use ({IMAGE_DEPLOYMENT_HEADER} header missing): "
            f"{detail.message}",
            hint=HEADER_HINT,
            **common,
        )
    fields = sorted(_agent_fields(detail))
    if detail.code == INVALID_PAYLOAD and fields:
        return ServiceRefusedError(
            f"Foundry does not accept {', '.join(fields)} in a request that references an agent "
            f"(HTTP 400, invalid_payload): {detail.message}",
            hint=AGENT_FIELD_HINT,
            **common,
        )
    return None


def _agent_fields(detail: ErrorDetail) -> set[str]:
    """The agent-only fields an `invalid_payload` names, in its `param` or in each of its `details`."""
    params = [detail.param or "", *(str(item.get("param") or "") for item in detail.details or [])]
    return {param for param in params if param in AGENT_FIELDS}


def is_content_filter(detail: ErrorDetail, filters: list[dict[str, Any]] | None = None) -> bool:
    """An error that says content filtering blocked the prompt or the image: by its code, its `innererror`
    code, or a blocked entry of its `content_filters`."""
    inner = (detail.innererror or {}).get("code")
    blocked = any(isinstance(entry, dict) and entry.get("blocked") is True for entry in filters or [])
    return (detail.code or "").lower() in FILTER_CODES or inner in FILTER_INNER_CODES or blocked


def filter_categories(detail: ErrorDetail, filters: list[dict[str, Any]] | None = None) -> list[str]:
    """The categories that were filtered, from each form Azure uses: `innererror.content_filter_result(s)`,
    `moderation_details.categories`, and the blocked entries of `content_filters[].content_filter_results`."""
    inner = detail.innererror or {}
    results = [inner.get("content_filter_result") or inner.get("content_filter_results")]
    results += [e.get("content_filter_results") for e in filters or [] if isinstance(e, dict) and e.get("blocked")]
    found = {
        name
        for result in results
        if isinstance(result, dict)
        for name, value in result.items()
        if isinstance(value, dict) and value.get("filtered") is True
    }
    moderation = (detail.moderation_details or {}).get("categories")
    if isinstance(moderation, list):
        found.update(str(category) for category in moderation)
    return sorted(found)


def filtered_error(
    detail: ErrorDetail, filters: list[dict[str, Any]] | None = None, common: dict[str, Any] | None = None
) -> ContentFilteredError:
    """The content-filter error for `detail`; an image blocked after it was generated says so."""
    categories = filter_categories(detail, filters)
    which = f" (categories: {', '.join(categories)})" if categories else ""
    stage = (detail.moderation_details or {}).get("moderation_stage")
    extra = {"upstream_code": detail.code, "upstream_param": detail.param, **(common or {})}
    if detail.code == MODERATION_CODE or stage == "output":
        return ContentFilteredError(
            f"The generated image was blocked by content filtering{which}.", hint=REPHRASE, **extra
        )
    return ContentFilteredError(f"The request was blocked by Azure content filtering{which}.", hint=REPHRASE, **extra)


def refusal_hint(status: int, detail: ErrorDetail | None) -> str | None:
    """What to do about another 4xx refusal, read from where the error points (`param`) and what it is."""
    if status != 400 or detail is None:
        return None
    param = detail.param or ""
    if param == IMAGE_DEPLOYMENT_HEADER or param.endswith("model"):
        # The header names another image deployment, or a model deployment is unknown.
        return DEPLOYMENT_HINT
    if detail.code is None and not param:
        return GENERIC_400_HINT
    return None
