"""`foundry-image-mcp doctor`: check, in order, everything the server needs before a client connects.

1. configuration     the settings load (environment + flags);
2. store             the image store takes a file: the output directory is writable, or (azure-blob) a test
                     blob is written, read, listed and deleted in the container, as the server would;
3. credentials       an API key is set, or a Microsoft Entra ID token can be had (naming the credential);
4. endpoint          an authenticated `GET {endpoint}/agents/{agent}` gets an answer (a 404 is fine);
5. deployments       the image and orchestrator deployments are found (or looked up) as the server does,
                     with their models; a retired image model fails, one retiring within 60 days warns;
6. agent             the image agent version is found or created, exactly as the server does it;
7. image deployment  that version carries the image deployment (and, with --live, the deployment made an image);
8. live generation   with --live only: one real low-quality 1024x1024 image through `ImageService.generate`.

Every outcome is a row of the table printed to stdout; nothing ends in a traceback. The exit
status is 0 only when every check passed (a WARN counts as passed), a live check skipped for want
of `--live` aside. Secrets (the API key, tokens) never appear in the table. The checks against
Foundry are in `doctor_foundry` and `doctor_deployments`, the store's in `doctor_store`, the table in
`doctor_table`.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio
import httpx2

from mcp_server.cli.doctor_deployments import check_deployments
from mcp_server.cli.doctor_foundry import (
    CREDENTIAL_FIX,
    WatchedHttp,
    check_agent_and_deployment,
    check_endpoint,
    check_live,
)
from mcp_server.cli.doctor_store import check_store
from mcp_server.cli.doctor_table import (
    CHECKS,
    CONFIGURATION,
    CREDENTIALS,
    DEPLOYMENTS,
    ENDPOINT,
    FAIL,
    LIVE,
    PASS,
    SKIP,
    WARN,
    Row,
    after,
    blocked,
    render,
    safe_url,
)
from mcp_server.config import API_KEY_VAR, Settings
from mcp_server.errors import AuthenticationError, ConfigurationError
from mcp_server.foundry.agents import AgentRegistry
from mcp_server.foundry.auth import ApiKeyAuth, EntraTokenAuth, default_credential
from mcp_server.foundry.deployments import DeploymentsClient
from mcp_server.foundry.http import FoundryHttp, build_client
from mcp_server.foundry.identity_compat import check_credential, credential_source
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.protocol import TOKEN_SCOPE
from mcp_server.service.deployments import DeploymentResolver

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

PROBE_RETRY: Final = RetryPolicy(attempts=2, deadline=30.0)
"""The reachability probe reports a dead endpoint after one retry rather than the server's four tries."""
SETTINGS_FIX: Final = "Fix the named setting (see Environment variables in the README)."


def run_doctor(overrides: dict[str, Any], *, live: bool) -> int:
    """Entry point of `foundry-image-mcp doctor`: print the table, return the exit status."""
    rows = diagnose(overrides, live=live)
    print(render(rows))
    failed = [row.check for row in rows if not row.ok]
    if failed:
        print(f"\n{len(failed)} of {len(rows)} checks did not pass: {', '.join(failed)}.")
        return 1
    warned = sum(1 for row in rows if row.result == WARN)
    passed = "All checks passed" + (f" ({warned} with a warning)." if warned else ".")
    print("\n" + passed + ("" if live else " Run with --live to also generate one image."))
    return 0


def diagnose(
    overrides: dict[str, Any], *, live: bool, environ: dict[str, str] | None = None, today: date | None = None
) -> list[Row]:
    """Run the checks in order; a check that cannot run because an earlier one failed is a blocked SKIP.

    `today` (UTC today by default) decides which image models are retired or about to be."""
    try:
        settings = Settings.load(environ, **overrides)
    except ConfigurationError as exc:
        return [
            Row(CONFIGURATION, FAIL, exc.message, exc.hint or SETTINGS_FIX),
            *blocked(after(CONFIGURATION), CONFIGURATION, live=live),
        ]
    rows = [_configuration(settings)]
    try:
        anyio.run(_remote_checks, settings, live, rows, today or datetime.now(UTC).date())
    except Exception as exc:  # a bug here must still end as a row, not a traceback
        logger.exception("doctor failed")
        done = {row.check for row in rows}
        rows.append(Row("doctor", FAIL, f"unexpected {type(exc).__name__}: {exc}", "Run with --log-level DEBUG."))
        rows.extend(blocked([check for check in CHECKS if check not in done], "doctor", live=live))
    return rows


def _configuration(settings: Settings) -> Row:
    store = "local" if settings.store == "local" else f"azure-blob (container {settings.blob_container})"
    return Row(
        CONFIGURATION,
        PASS,
        f"endpoint {safe_url(settings.endpoint)}, agent {settings.agent_name}, "
        f"model deployment {settings.model_deployment or '(found in the project)'}, "
        f"image deployment {settings.image_deployment or '(found in the project)'}, "
        f"auth {settings.auth_mode}, output dir {settings.output_dir}, store {store}",
    )


async def _remote_checks(settings: Settings, live: bool, rows: list[Row], today: date) -> None:
    """The checks after configuration, appended to `rows` as they finish."""
    rows.append(await check_store(settings))
    auth = await _credentials(settings, rows)
    if auth is None:
        rows.extend(blocked(after(CREDENTIALS), CREDENTIALS, live=live))
        return
    client = build_client(
        settings.endpoint, auth, connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout
    )
    try:
        http = WatchedHttp(client)
        probe = FoundryHttp(client, retry=PROBE_RETRY)
        rows.append(await check_endpoint(probe, settings))
        if rows[-1].result != PASS:
            rows.extend(blocked(after(ENDPOINT), ENDPOINT, live=live))
            return
        resolver = DeploymentResolver(
            DeploymentsClient(http),
            image_deployment=settings.image_deployment,
            model_deployment=settings.model_deployment,
        )
        row, resolved = await check_deployments(resolver, today)
        rows.append(row)
        if resolved is None:
            rows.extend(blocked(after(DEPLOYMENTS), DEPLOYMENTS, live=live))
            return
        registry = AgentRegistry(http, settings.agent_name, resolved.model_deployment)
        rows.extend(await check_agent_and_deployment(http, registry, resolved))
        if rows[-1].result != PASS:
            rows.extend(blocked([LIVE], rows[-1].check, live=live))
        elif not live:
            rows.append(Row(LIVE, SKIP, "run with --live"))
        else:
            await check_live(http, registry, resolver, settings, rows)
    finally:
        await client.aclose()


async def _credentials(settings: Settings, rows: list[Row]) -> httpx2.Auth | None:
    """The outbound auth, its row appended to `rows`; None when no credential works."""
    if settings.api_key is not None:
        rows.append(Row(CREDENTIALS, PASS, f"api-key (from {API_KEY_VAR})"))
        return ApiKeyAuth(settings.api_key.get_secret_value())
    made: list[TokenCredential] = []

    def credential() -> TokenCredential:
        made.append(default_credential())
        if len(made) == 1:
            check_credential(made[0])
        return made[-1]

    entra = EntraTokenAuth(credential)
    try:
        await entra.token()  # in a worker thread, as the server does; cached for the checks that follow
    except AuthenticationError as exc:
        rows.append(Row(CREDENTIALS, FAIL, exc.message, CREDENTIAL_FIX))
        return None
    source = credential_source(made[-1]) if made else "DefaultAzureCredential"
    rows.append(Row(CREDENTIALS, PASS, f"entra-id: token for {TOKEN_SCOPE} from {source}"))
    return entra


__all__ = ["CHECKS", "Row", "diagnose", "render", "run_doctor"]
