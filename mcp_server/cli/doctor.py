"""`foundry-image-mcp doctor`: check, in order, everything the server needs before a client connects.

1. configuration     the settings load (environment + flags) and the output directory is writable;
2. credentials       an API key is set, or a Microsoft Entra ID token can be had (naming the credential);
3. endpoint          an authenticated `GET {endpoint}/agents/{agent}` gets an answer (a 404 is fine);
4. agent             the image agent version is found or created, exactly as the server does it;
5. image deployment  that version carries the image deployment (and, with --live, the deployment made an image);
6. live generation   with --live only: one real low-quality 1024x1024 image through `ImageService.generate`.

Every outcome is a row of the table printed to stdout; nothing ends in a traceback. The exit
status is 0 only when every check passed, a live check skipped for want of `--live` aside.
Secrets (the API key, tokens) never appear in the table.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2

from mcp_server.config import API_KEY_VAR, IMAGE_VAR, MODEL_VAR, OUTPUT_DIR_VAR, Settings
from mcp_server.errors import (
    AuthenticationError,
    ConfigurationError,
    FoundryImageError,
    NotFoundError,
    ServiceUnreachableError,
)
from mcp_server.foundry.agents import AgentRegistry, AgentVersionRef
from mcp_server.foundry.auth import ApiKeyAuth, EntraTokenAuth, default_credential
from mcp_server.foundry.http import DEPLOYMENT_HINT, FoundryHttp, build_client
from mcp_server.foundry.retry import RetryPolicy
from mcp_server.foundry.runs import RunSettings
from mcp_server.images.store import ImageStore
from mcp_server.protocol import AGENTS_API_VERSION, TOKEN_SCOPE
from mcp_server.service.background import BackgroundJobs
from mcp_server.service.calls import ImageOptions
from mcp_server.service.generation import ImageService

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

PASS: Final = "PASS"
FAIL: Final = "FAIL"
SKIP: Final = "SKIP"

CONFIGURATION: Final = "configuration"
CREDENTIALS: Final = "credentials"
ENDPOINT: Final = "endpoint"
AGENT: Final = "agent"
IMAGE_DEPLOYMENT: Final = "image deployment"
LIVE: Final = "live generation"
CHECKS: Final = (CONFIGURATION, CREDENTIALS, ENDPOINT, AGENT, IMAGE_DEPLOYMENT, LIVE)

DOCTOR_OPTIONS: Final = ImageOptions(size="1024x1024", quality="low")
"""One option set for both the agent check and the live image, so --live reuses the version checked."""
LIVE_PROMPT: Final = "A small red circle in the middle of a plain white background."
PROBE_RETRY: Final = RetryPolicy(attempts=2, deadline=30.0)
"""The reachability probe reports a dead endpoint after one retry rather than the server's four tries."""
CREDENTIAL_FIX: Final = (
    "az login / managed identity (or a service principal) / set AZURE_AI_API_KEY to use an API key instead."
)
ENDPOINT_FIX: Final = (
    "Check AZURE_AI_PROJECT_ENDPOINT (https://<resource>.services.ai.azure.com/api/projects/<project>) "
    "and your network connection."
)
SETTINGS_FIX: Final = "Fix the named setting (see Environment variables in the README)."


@dataclass(frozen=True)
class Row:
    check: str
    result: str
    detail: str
    fix: str = ""
    blocked: bool = False
    """A SKIP because an earlier check failed: counts as not passed."""

    @property
    def ok(self) -> bool:
        return self.result == PASS or (self.result == SKIP and not self.blocked)


def run_doctor(overrides: dict[str, Any], *, live: bool) -> int:
    """Entry point of `foundry-image-mcp doctor`: print the table, return the exit status."""
    rows = diagnose(overrides, live=live)
    print(render(rows))
    failed = [row.check for row in rows if not row.ok]
    if failed:
        print(f"\n{len(failed)} of {len(rows)} checks did not pass: {', '.join(failed)}.")
        return 1
    print("\nAll checks passed." + ("" if live else " Run with --live to also generate one image."))
    return 0


def diagnose(overrides: dict[str, Any], *, live: bool, environ: dict[str, str] | None = None) -> list[Row]:
    """Run the checks in order; a check that cannot run because an earlier one failed is a blocked SKIP."""
    try:
        settings = Settings.load(environ, **overrides)
    except ConfigurationError as exc:
        return [
            Row(CONFIGURATION, FAIL, exc.message, exc.hint or SETTINGS_FIX),
            *_blocked(CHECKS[1:], CONFIGURATION, live=live),
        ]
    rows = [_configuration(settings)]
    try:
        anyio.run(_remote_checks, settings, live, rows)
    except Exception as exc:  # a bug here must still end as a row, not a traceback
        logger.exception("doctor failed")
        done = {row.check for row in rows}
        rows.append(Row("doctor", FAIL, f"unexpected {type(exc).__name__}: {exc}", "Run with --log-level DEBUG."))
        rows.extend(_blocked([check for check in CHECKS if check not in done], "doctor", live=live))
    return rows


def _configuration(settings: Settings) -> Row:
    detail = (
        f"endpoint {safe_url(settings.endpoint)}, agent {settings.agent_name}, "
        f"model deployment {settings.model_deployment}, image deployment {settings.image_deployment}, "
        f"auth {settings.auth_mode}, output dir {settings.output_dir}"
    )
    problem = _unwritable(settings.output_dir)
    if problem is not None:
        return Row(
            CONFIGURATION,
            FAIL,
            f"{detail}; the output directory is not writable: {problem}",
            f"Set {OUTPUT_DIR_VAR} (or --output-dir) to a directory this user can write to.",
        )
    return Row(CONFIGURATION, PASS, detail + " (writable)")


def _unwritable(directory: Path) -> str | None:
    """Why `directory` cannot hold images (created if missing), or None when a file can be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".doctor-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"foundry-image-mcp doctor\n")
        finally:
            os.unlink(name)
    except OSError as exc:
        return f"{exc.strerror or type(exc).__name__} ({exc.filename or directory})"
    return None


async def _remote_checks(settings: Settings, live: bool, rows: list[Row]) -> None:
    """Checks 2 to 6, appended to `rows` as they finish."""
    made: list[TokenCredential] = []

    def credential() -> TokenCredential:
        made.append(default_credential())
        return made[-1]

    auth: httpx2.Auth
    if settings.api_key is not None:
        auth = ApiKeyAuth(settings.api_key.get_secret_value())
        rows.append(Row(CREDENTIALS, PASS, f"api-key (from {API_KEY_VAR})"))
    else:
        entra = EntraTokenAuth(credential)
        auth = entra
        try:
            await entra.token()  # in a worker thread, as the server does; cached for the checks below
        except AuthenticationError as exc:
            rows.append(Row(CREDENTIALS, FAIL, exc.message, CREDENTIAL_FIX))
            rows.extend(_blocked(CHECKS[2:], CREDENTIALS, live=live))
            return
        source = credential_source(made[-1]) if made else "DefaultAzureCredential"
        rows.append(Row(CREDENTIALS, PASS, f"entra-id: token for {TOKEN_SCOPE} from {source}"))

    client = build_client(settings.endpoint, auth, _timeouts(settings))
    try:
        http = _WatchedHttp(client, image_deployment=settings.image_deployment)
        probe = FoundryHttp(client, image_deployment=settings.image_deployment, retry=PROBE_RETRY)
        rows.append(await _endpoint(probe, settings))
        if rows[-1].result != PASS:
            rows.extend(_blocked(CHECKS[3:], ENDPOINT, live=live))
            return
        registry = AgentRegistry(http, settings.agent_name, settings.model_deployment)
        rows.extend(await _agent_and_deployment(http, registry, settings))
        if rows[-1].result != PASS:
            rows.extend(_blocked([LIVE], rows[-1].check, live=live))
        elif not live:
            rows.append(Row(LIVE, SKIP, "run with --live"))
        else:
            await _live(http, registry, settings, rows)
    finally:
        await client.aclose()


async def _endpoint(probe: FoundryHttp, settings: Settings) -> Row:
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


async def _agent_and_deployment(http: _WatchedHttp, registry: AgentRegistry, settings: Settings) -> list[Row]:
    tool = DOCTOR_OPTIONS.tool(settings.image_deployment)
    before = http.versions_created
    try:
        ref = await registry.version_for(tool)
    except FoundryImageError as exc:
        which = deployment_at_fault(exc, settings, generating=False)
        if which == IMAGE_VAR:
            fix = deployment_fix(IMAGE_VAR, settings)
            return [
                Row(AGENT, FAIL, exc.message, fix),
                Row(
                    IMAGE_DEPLOYMENT,
                    FAIL,
                    f"Foundry refused {settings.image_deployment} as the image model (see agent)",
                    fix,
                ),
            ]
        fix = deployment_fix(which, settings) if which else (exc.hint or "Check AZURE_AI_AGENT_NAME.")
        return [Row(AGENT, FAIL, exc.message, fix), *_blocked([IMAGE_DEPLOYMENT], AGENT, live=True)]
    how = "created" if http.versions_created > before else "reused"
    return [
        Row(AGENT, PASS, f"{_ref(ref)} ({how})"),
        Row(
            IMAGE_DEPLOYMENT,
            PASS,
            f"{settings.image_deployment} is the image model of {_ref(ref)}, which Foundry accepted",
        ),
    ]


async def _live(http: FoundryHttp, registry: AgentRegistry, settings: Settings, rows: list[Row]) -> None:
    """One real generation through the server's own `ImageService`, stored in a throw-away directory."""
    outcome: Row | FoundryImageError | None = None
    async with anyio.create_task_group() as tg:
        service = ImageService(
            http,
            registry,
            model_deployment=settings.model_deployment,
            jobs=BackgroundJobs(tg),
            run_settings=RunSettings(
                poll_interval=settings.poll_interval, timeout=settings.timeout, heartbeat=settings.heartbeat
            ),
            max_concurrent=1,
        )
        with tempfile.TemporaryDirectory(prefix="foundry-image-mcp-doctor-") as scratch:
            started = time.monotonic()
            try:
                image = await service.generate(LIVE_PROMPT, DOCTOR_OPTIONS, ImageStore(Path(scratch)))
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
    if isinstance(outcome, Row):
        rows.append(outcome)
        return
    assert outcome is not None
    which = deployment_at_fault(outcome, settings, generating=True)
    if which is None:
        rows.append(Row(LIVE, FAIL, outcome.message, outcome.hint or ""))
        return
    fix = deployment_fix(which, settings)
    if which == IMAGE_VAR:
        # The version accepted the name, but the generation proved the deployment is not there.
        at = next(index for index, row in enumerate(rows) if row.check == IMAGE_DEPLOYMENT)
        rows[at] = Row(IMAGE_DEPLOYMENT, FAIL, f"{settings.image_deployment}: {outcome.message}", fix)
    rows.append(Row(LIVE, FAIL, outcome.message, fix))


class _WatchedHttp(FoundryHttp):
    """Counts the agent versions created through it, to tell a reused version from a new one."""

    versions_created = 0

    async def request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = await super().request_json(method, path, **kwargs)
        if method.upper() == "POST" and path.startswith("agents/") and path.endswith("/versions"):
            self.versions_created += 1
        return body


def deployment_at_fault(exc: FoundryImageError, settings: Settings, *, generating: bool) -> str | None:
    """Which deployment variable an error blames (IMAGE_VAR, MODEL_VAR, or "" for either), or None."""
    text = exc.message.lower()
    if not (exc.code == "deployment_not_found" or (exc.status == 400 and "deployment" in text)):
        return None
    if _quoted(settings.image_deployment, text):
        return IMAGE_VAR
    if _quoted(settings.model_deployment, text):
        return MODEL_VAR
    param = (exc.upstream_param or "").lower()
    if "tools" in param:
        return IMAGE_VAR
    if param.endswith("model"):
        return MODEL_VAR
    # On a responses call the deployment named in the header is the image one.
    return IMAGE_VAR if generating or exc.code == "deployment_not_found" else ""


def _quoted(name: str, text: str) -> bool:
    return f"'{name.lower()}'" in text or f'"{name.lower()}"' in text


def deployment_fix(variable: str, settings: Settings) -> str:
    if variable == IMAGE_VAR:
        return (
            f"Check {IMAGE_VAR} (now {settings.image_deployment}): it must name an image model deployment "
            "(e.g. gpt-image-1) in the Foundry project."
        )
    if variable == MODEL_VAR:
        return (
            f"Check {MODEL_VAR} (now {settings.model_deployment}): it must name a chat model deployment "
            "(e.g. gpt-4.1) in the Foundry project."
        )
    return DEPLOYMENT_HINT


def credential_source(credential: object) -> str:
    """The azure-identity credential that produced the token: DefaultAzureCredential remembers it privately."""
    chosen = getattr(credential, "_successful_credential", None)
    return type(chosen).__name__ if chosen is not None else type(credential).__name__


def safe_url(url: str) -> str:
    """`url` without any user:password part, so that the table never shows one."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _blocked(checks: Iterable[str], by: str, *, live: bool) -> list[Row]:
    rows = []
    for check in checks:
        if check == LIVE and not live:
            rows.append(Row(LIVE, SKIP, "run with --live"))
        else:
            rows.append(Row(check, SKIP, f"not run: {by} failed", blocked=True))
    return rows


def _ref(ref: AgentVersionRef) -> str:
    return f"{ref.name}:{ref.version}"


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:.1f} MiB" if count >= 1024 * 1024 else f"{count / 1024:.0f} KiB"


def _timeouts(settings: Settings) -> httpx2.Timeout:
    return httpx2.Timeout(
        connect=settings.connect_timeout, read=settings.read_timeout, write=60.0, pool=settings.connect_timeout
    )


HEADERS: Final = ("check", "result", "detail", "fix")
GAP: Final = "  "


def render(rows: list[Row], width: int | None = None) -> str:
    """The rows as a plain-text table; detail and fix wrap to fit `width` (the terminal's, or 160)."""
    total = width or shutil.get_terminal_size((160, 24)).columns
    check_w = max(len(HEADERS[0]), *(len(row.check) for row in rows))
    result_w = max(len(HEADERS[1]), *(len(row.result) for row in rows))
    room = max(total - check_w - result_w - 3 * len(GAP), 70)
    fix_w = max(30, room * 2 // 5, _longest_word(row.fix for row in rows))
    detail_w = max(room - fix_w, _longest_word(row.detail for row in rows))
    lines = [_line(HEADERS, (check_w, result_w, detail_w, fix_w))]
    lines.append(
        _line(tuple("-" * w for w in (check_w, result_w, detail_w, fix_w)), (check_w, result_w, detail_w, fix_w))
    )
    for row in rows:
        detail = _wrap(row.detail, detail_w)
        fix = _wrap(row.fix, fix_w)
        for index in range(max(len(detail), len(fix))):
            first = index == 0
            lines.append(
                _line(
                    (
                        row.check if first else "",
                        row.result if first else "",
                        detail[index] if index < len(detail) else "",
                        fix[index] if index < len(fix) else "",
                    ),
                    (check_w, result_w, detail_w, fix_w),
                )
            )
    return "\n".join(lines)


def _longest_word(texts: Iterable[str]) -> int:
    """Columns grow to hold their longest word, so that a URL or a path is never cut in two."""
    return max((len(word) for text in texts for word in text.split()), default=0)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _line(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    return GAP.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


__all__ = ["CHECKS", "Row", "diagnose", "render", "run_doctor"]
