"""Which deployments a call uses, found in the project rather than guessed.

Two deployments make an image: the image model's (sent as the tool's `model` and as the
`x-ms-oai-image-generation-deployment` header) and the orchestrator's (the agent's `model`). Each may be
named by a variable (`AZURE_AI_IMAGE_DEPLOYMENT_NAME`, `AZURE_AI_MODEL_DEPLOYMENT_NAME`); a name given is
looked up (`GET /deployments/{name}`) for its model, a name not given is discovered: the project's one
deployment of that kind (`GET /deployments`). Several, or none, is an error that lists what the project
has and names the variable to set.

This happens at the first tool call, never at start (the MCP handshake must not wait on Foundry), once
per process: concurrent first calls share one lookup. A project whose deployments API refuses (401, 403,
404) keeps working with the names as given; that is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import anyio

from mcp_server.config import ENDPOINT_VARS, IMAGE_VAR, MODEL_VAR
from mcp_server.errors import AuthenticationError, ConfigurationError, FoundryImageError, NotFoundError
from mcp_server.foundry.deployments import DeploymentsClient
from mcp_server.protocol import Deployment, is_image_model, is_orchestrator_model, unknown_model_note

logger = logging.getLogger(__name__)

REFUSING_STATUSES: Final = frozenset({401, 403, 404})
"""Answers of the deployments API that mean "not for you / not here": the names given are used as they are."""


@dataclass(frozen=True)
class ChosenDeployment:
    name: str
    model: str | None
    """The deployment's `modelName`; None when the deployments API refused to say."""
    how: Literal["discovered", "given"]

    def shown(self) -> str:
        return f"{self.name} -> {self.model or 'model unknown'} ({self.how})"


@dataclass(frozen=True)
class ResolvedDeployments:
    """The deployments every call of this process uses."""

    image: ChosenDeployment
    orchestrator: ChosenDeployment
    refused: FoundryImageError | None = None
    """Why the deployments API could not be read, when the names are used as given."""

    @property
    def image_deployment(self) -> str:
        return self.image.name

    @property
    def image_model(self) -> str:
        """The image model, for its rules; the deployment name stands in when the API refused to say."""
        return self.image.model or self.image.name

    @property
    def model_deployment(self) -> str:
        return self.orchestrator.name


@dataclass(frozen=True)
class Role:
    """One of the two deployments a call needs, and how to recognise its model."""

    variable: str
    what: str
    models: str
    """Which models fit, for messages."""
    fits: Callable[[str], bool]
    wrong: Callable[[str], bool]
    """A model that certainly cannot play this role (the other role's kind)."""
    example: str


IMAGE: Final = Role(
    IMAGE_VAR, "image model", "gpt-image-1.5, gpt-image-2, ...", is_image_model, is_orchestrator_model, "gpt-image-2"
)
ORCHESTRATOR: Final = Role(
    MODEL_VAR,
    "orchestrator model",
    "gpt-4o, gpt-4o-mini, the gpt-4.1 family, o3 or the gpt-5 series",
    is_orchestrator_model,
    is_image_model,
    "gpt-4.1",
)


class _Refused(Exception):
    def __init__(self, error: FoundryImageError) -> None:
        super().__init__(error.message)
        self.error = error


def _refusal(exc: FoundryImageError) -> bool:
    return isinstance(exc, AuthenticationError | NotFoundError) and exc.status in REFUSING_STATUSES


def listed(deployments: Sequence[Deployment]) -> str:
    """`name -> model, ...` for a message, or a note that there is nothing."""
    shown = [f"{d.name} -> {d.model_name or d.type}" for d in sorted(deployments, key=lambda d: d.name)]
    return ", ".join(shown) or "no deployments"


class DeploymentResolver:
    """Finds (once per process) the image and orchestrator deployments; `resolve()` before each call."""

    def __init__(
        self, client: DeploymentsClient, *, image_deployment: str | None, model_deployment: str | None
    ) -> None:
        self._client = client
        self._given = {IMAGE.variable: image_deployment, ORCHESTRATOR.variable: model_deployment}
        self._resolved: ResolvedDeployments | None = None
        self._refused: FoundryImageError | None = None
        self._listing: list[Deployment] | None = None
        self._lock = anyio.Lock()

    async def resolve(self) -> ResolvedDeployments:
        """The deployments to use; cheap after the first success.

        Raises:
            ConfigurationError: several or no deployments fit, a name given is not in the project, or the
                deployments API refused and a name is missing; the message lists what the project has.
            FoundryImageError: the deployments API failed otherwise (the next call asks again).
        """
        if self._resolved is not None:
            return self._resolved
        async with self._lock:
            if self._resolved is None:
                self._resolved = await self._lookup()
            return self._resolved

    async def _lookup(self) -> ResolvedDeployments:
        refused = self._refused
        if refused is None:
            self._listing = None  # a failed lookup left nothing worth keeping: look at the project afresh
            try:
                image = await self._choose(IMAGE)
                orchestrator = await self._choose(ORCHESTRATOR)
            except _Refused as exc:
                refused = self._refused = exc.error
                logger.warning(
                    "The project's deployments API refused (HTTP %s); using the deployment names as given.",
                    refused.status,
                )
            else:
                logger.info("Deployments: image %s, orchestrator %s", image.shown(), orchestrator.shown())
                note = unknown_model_note(image.model) if image.model else None
                if note:
                    logger.info(note)
                return ResolvedDeployments(image, orchestrator)
        return self._as_given(refused)

    def _as_given(self, refused: FoundryImageError) -> ResolvedDeployments:
        missing = [role for role in (IMAGE, ORCHESTRATOR) if not self._given[role.variable]]
        if missing and refused.status == 401:
            # With no names to fall back on, a rejected credential (401, unlike a 403 for this one API) is the
            # problem to report: its hint says which key or identity to fix, and every other call would fail too.
            raise refused
        if missing:
            why = f"HTTP {refused.status}{', ' + refused.upstream_code if refused.upstream_code else ''}"
            raise ConfigurationError(
                f"Could not discover the {' and '.join(role.what for role in missing)} deployment to use: "
                f"the project's deployments API refused ({why}).",
                hint=f"Set {' and '.join(f'{role.variable} (e.g. {role.example})' for role in missing)}, "
                "or let this identity read the project's deployments"
                + (f" (a 404 can also mean that {ENDPOINT_VARS[0]} is wrong)." if refused.status == 404 else "."),
                status=refused.status,
                request_id=refused.request_id,
                upstream_code=refused.upstream_code,
            )
        image, orchestrator = (
            ChosenDeployment(str(self._given[role.variable]), None, "given") for role in (IMAGE, ORCHESTRATOR)
        )
        return ResolvedDeployments(image, orchestrator, refused=refused)

    async def _all(self) -> list[Deployment]:
        if self._listing is None:
            try:
                self._listing = await self._client.list_all()
            except FoundryImageError as exc:
                if _refusal(exc):
                    raise _Refused(exc) from None
                raise
        return self._listing

    async def _choose(self, role: Role) -> ChosenDeployment:
        given = self._given[role.variable]
        if given:
            return await self._given_one(role, given)
        deployments = await self._all()
        fitting = [d for d in deployments if d.model_name and role.fits(d.model_name)]
        if len(fitting) == 1:
            return ChosenDeployment(fitting[0].name, fitting[0].model_name, "discovered")
        if fitting:
            raise ConfigurationError(
                f"The Foundry project has {len(fitting)} {role.what} deployments ({listed(fitting)}); "
                f"{role.variable} says which one to use.",
                hint=f"Set {role.variable} to one of them, e.g. {role.variable}={fitting[0].name}.",
            )
        raise ConfigurationError(
            f"The Foundry project has no deployment of an {role.what} ({role.models}); it has: {listed(deployments)}.",
            hint=f"Deploy one (e.g. {role.example}) in the project, or set {role.variable} to a deployment name.",
        )

    async def _given_one(self, role: Role, name: str) -> ChosenDeployment:
        try:
            deployment = await self._client.get(name)
        except FoundryImageError as exc:
            if not _refusal(exc):
                raise
            if exc.status != 404:
                raise _Refused(exc) from None
            # 404: no such deployment, or no deployments API at all. The listing tells which.
            listed_one = next((d for d in await self._all() if d.name == name), None)
            if listed_one is None:
                raise ConfigurationError(
                    f"{role.variable} is {name!r}, but the Foundry project has no deployment of that name "
                    f"(it has: {listed(await self._all())}).",
                    hint=f"Set {role.variable} to the name of an {role.what} deployment, or unset it to use the "
                    "project's only one.",
                    status=exc.status,
                    request_id=exc.request_id,
                    upstream_code=exc.upstream_code,
                ) from None
            deployment = listed_one
        model = deployment.model_name
        if model and role.wrong(model):
            raise ConfigurationError(
                f"{role.variable} is {name!r}, a deployment of {model}, which is not an {role.what}.",
                hint=f"Set {role.variable} to an {role.what} deployment (e.g. {role.example}), or unset it to "
                "use the project's only one.",
            )
        if model and not role.fits(model):
            logger.warning("%s=%s serves %s, which is not a known %s", role.variable, name, model, role.what)
        return ChosenDeployment(name, model, "given")
