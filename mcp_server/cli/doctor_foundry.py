"""The doctor's checks against the Foundry project: endpoint, agent, image deployment, live generation.

Each runs through the server's own code (`FoundryHttp`, `AgentRegistry`, `ImageService`), so a
check that passes here means the server gets as far.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Final

import anyio

from mcp_server.cli.doctor_table import AGENT, ENDPOINT, FAIL, IMAGE_DEPLOYMENT, LIVE, PASS, Row, blocked, safe_url
from mcp_server.config import IMAGE_VAR, MODEL_VAR, Settings
from mcp_server.errors import AuthenticationError, FoundryImageError, NotFoundError, ServiceUnreachableError
from mcp_server.foundry.agents import AgentRegistry, AgentVersionRef
from mcp_server.foundry.http import FoundryHttp
from mcp_server.foundry.runs import RunSettings
from mcp_server.foundry.upstream_errors import DEPLOYMENT_HINT
from mcp_server.images.local import LocalStore
from mcp_server.protocol import AGENTS_API_VERSION, IMAGE_DEPLOYMENT_HEADER
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.calls import ImageOptions
from mcp_server.service.deployments import DeploymentResolver, ResolvedDeployments
from mcp_server.service.generation import ImageService

DOCTOR_OPTIONS: Final = ImageOptions(size="1024x1024", quality="low")
"""One option set for both the agent check and the live image, so --live reuses the version checked."""
LIVE_PROMPT: Final = "A small red circle in the middle of a plain white background."
CREDENTIAL_FIX: Final = (
    "az login / managed identity (or a service principal) / set AZURE_AI_API_KEY to use an API key instead."
)
ENDPOINT_FIX: Final = (
    "Check AZURE_AI_PROJECT_ENDPOINT (https://<resource>.services.ai.azure.com/api/projects/<project>) "
    "and your network connection."
)


class WatchedHttp(FoundryHttp):
    """Counts the agent versions created through it, to tell a reused version from a new one."""

    versions_created = 0

    async def request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = await super().request_json(method, path, **kwargs)
        if method.upper() == "POST" and path.startswith("agents/") and path.endswith("/versions"):
            self.versions_created += 1
        return body


async def check_endpoint(probe: FoundryHttp, settings: Settings) -> Row:
    where = safe_url(settings.endpoint)
    try:
        body = await probe.request_json(
            "GET",
            f"agents/{settings.agent_name}",
            params={"api-version": AGENTS_API_VERSION},
            what="read the image agent",
        )
    except NotFoundError as exc:
        if exc.code == "deployment_not_found":
            return Row(ENDPOINT, FAIL, exc.message, exc.hint or ENDPOINT_FIX)
        return Row(
            ENDPOINT,
            PASS,
            f"{where} answered (agent {settings.agent_name} does not exist yet; the next check creates it)",
        )
    except AuthenticationError as exc:
        return Row(ENDPOINT, FAIL, exc.message, exc.hint or CREDENTIAL_FIX)
    except ServiceUnreachableError as exc:
        return Row(ENDPOINT, FAIL, f"cannot reach {where}: {exc.message}", ENDPOINT_FIX)
    except FoundryImageError as exc:
        return Row(ENDPOINT, FAIL, exc.message, exc.hint or ENDPOINT_FIX)
    latest = (body.get("versions") or {}).get("latest") if isinstance(body.get("versions"), dict) else None
    version = latest.get("version") if isinstance(latest, dict) else None
    known = f", latest version {version}" if version else ""
    return Row(ENDPOINT, PASS, f"{where} answered (agent {settings.agent_name} exists{known})")


async def check_agent_and_deployment(
    http: WatchedHttp, registry: AgentRegistry, resolved: ResolvedDeployments
) -> list[Row]:
    tool = DOCTOR_OPTIONS.tool(resolved.image_deployment)
    image = resolved.image.shown()
    before = http.versions_created
    try:
        ref = await registry.version_for(tool, model=resolved.model_deployment)
    except FoundryImageError as exc:
        which = deployment_at_fault(exc, generating=False)
        if which == IMAGE_VAR:
            fix = deployment_fix(IMAGE_VAR, resolved)
            refused = f"Foundry refused {image} as the image model (see agent)"
            return [Row(AGENT, FAIL, exc.message, fix), Row(IMAGE_DEPLOYMENT, FAIL, refused, fix)]
        fix = deployment_fix(which, resolved) if which else (exc.hint or "Check AZURE_AI_AGENT_NAME.")
        return [Row(AGENT, FAIL, exc.message, fix), *blocked([IMAGE_DEPLOYMENT], AGENT, live=True)]
    how = "created" if http.versions_created > before else "reused"
    accepted = f"{image} is the image model of {_ref(ref)}, which Foundry accepted"
    return [Row(AGENT, PASS, f"{_ref(ref)} ({how})"), Row(IMAGE_DEPLOYMENT, PASS, accepted)]


async def check_live(
    http: FoundryHttp, registry: AgentRegistry, deployments: DeploymentResolver, settings: Settings, rows: list[Row]
) -> None:
    """One real generation through the server's own `ImageService`, stored in a throw-away directory."""
    outcome = await _generate_once(http, registry, deployments, settings)
    if isinstance(outcome, Row):
        rows.append(outcome)
        return
    which = deployment_at_fault(outcome, generating=True)
    if which is None:
        rows.append(Row(LIVE, FAIL, outcome.message, outcome.hint or ""))
        return
    resolved = await deployments.resolve()
    fix = deployment_fix(which, resolved)
    if which == IMAGE_VAR:
        # The version accepted the name, but the generation proved the deployment is not there.
        at = next(index for index, row in enumerate(rows) if row.check == IMAGE_DEPLOYMENT)
        rows[at] = Row(IMAGE_DEPLOYMENT, FAIL, f"{resolved.image.shown()}: {outcome.message}", fix)
    rows.append(Row(LIVE, FAIL, outcome.message, fix))


async def _generate_once(
    http: FoundryHttp, registry: AgentRegistry, deployments: DeploymentResolver, settings: Settings
) -> Row | FoundryImageError:
    outcome: Row | FoundryImageError | None = None
    async with anyio.create_task_group() as tg:
        service = ImageService(
            http,
            registry,
            deployments=deployments,
            jobs=BackgroundJobs(tg),
            run_settings=RunSettings(
                poll_interval=settings.poll_interval, timeout=settings.timeout, heartbeat=settings.heartbeat
            ),
            max_concurrent=1,
        )
        with tempfile.TemporaryDirectory(prefix="foundry-image-mcp-doctor-") as scratch:
            started = time.monotonic()
            try:
                image = await service.generate(LIVE_PROMPT, DOCTOR_OPTIONS, LocalStore(Path(scratch)))
            except FoundryImageError as exc:
                outcome = exc
            else:
                record = image.record
                outcome = Row(
                    LIVE,
                    PASS,
                    f"{record.width}x{record.height} {record.output_format.upper()}, {_size(record.bytes)} "
                    f"in {time.monotonic() - started:.1f} s (response {record.response_id})",
                )
            finally:
                tg.cancel_scope.cancel()  # a generation left running upstream is not waited for
    assert outcome is not None
    return outcome


def deployment_at_fault(exc: FoundryImageError, *, generating: bool) -> str | None:
    """Which deployment variable an error blames (IMAGE_VAR, MODEL_VAR, or "" for either), or None.

    Read from the status, the code and where the error points (`param`), never from its wording."""
    param = (exc.upstream_param or "").lower()
    if exc.code == "deployment_not_found" or param == IMAGE_DEPLOYMENT_HEADER:
        # On a responses call the deployment named in the header is the image one.
        return IMAGE_VAR if generating or param == IMAGE_DEPLOYMENT_HEADER else ""
    if exc.status != 400:
        return None
    if param.endswith("model"):
        return IMAGE_VAR if "tools" in param else MODEL_VAR
    if param.endswith("tools") and generating:
        return IMAGE_VAR  # Azure's missing-header error points at `tools`
    return None


def deployment_fix(variable: str, resolved: ResolvedDeployments) -> str:
    if variable == IMAGE_VAR:
        return (
            f"Check {IMAGE_VAR} (now {resolved.image.shown()}): it must name an image model deployment "
            "(e.g. gpt-image-2) in the Foundry project."
        )
    if variable == MODEL_VAR:
        return (
            f"Check {MODEL_VAR} (now {resolved.orchestrator.shown()}): it must name a chat model deployment "
            "(e.g. gpt-4.1) in the Foundry project."
        )
    return DEPLOYMENT_HINT


def _ref(ref: AgentVersionRef) -> str:
    return f"{ref.name}:{ref.version}"


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:.1f} MiB" if count >= 1024 * 1024 else f"{count / 1024:.0f} KiB"
