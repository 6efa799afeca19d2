"""The tools' parameters, built from the option table in `mcp_server.protocol`.

Both tools take the same seven image options. A tool function takes them as one `options: ImageOptions`
keyword; `with_image_options` presents it to MCP with one flat parameter per option instead, so that
both input schemas list the same names, types, enums, bounds, patterns, defaults and descriptions,
written once. The schemas hold what any model accepts; each model's own rules (which sizes, which
qualities) are checked by the service against the deployment's model.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar, cast

from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_server.protocol import OUTPUT_OPTIONS, OptionSpec
from mcp_server.service.calls import ImageOptions

R = TypeVar("R")


def option_param(spec: OptionSpec[Any]) -> Any:
    """The type of a tool parameter for `spec`: its enum, strict integer range or string pattern, nullable
    when it has no default, with its description."""
    kind: Any = cast(Any, Literal)[spec.values] if spec.values else str if spec.pattern is not None else int
    if spec.default is None:
        kind = kind | None
    if spec.pattern is not None:
        return Annotated[kind, Field(pattern=spec.pattern, description=spec.description)]
    if spec.bounds is None:
        return Annotated[kind, Field(description=spec.description)]
    low, high = spec.bounds
    return Annotated[kind, Field(ge=low, le=high, strict=True, description=spec.description)]


def with_image_options(tool: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """`tool`, whose keyword `options: ImageOptions` MCP sees as one parameter per shared option."""
    signature = inspect.signature(tool, eval_str=True)
    parameters = list(signature.parameters.values())
    at = [parameter.name for parameter in parameters].index("options")
    keyword = inspect.Parameter.KEYWORD_ONLY
    if parameters[at].kind is not keyword:
        raise TypeError(f"{tool.__name__}: `options` must be keyword-only")
    parameters[at : at + 1] = [
        inspect.Parameter(spec.name, keyword, default=spec.default, annotation=option_param(spec))
        for spec in OUTPUT_OPTIONS
    ]

    async def flat(**arguments: Any) -> R:
        options = ImageOptions(**{spec.name: arguments.pop(spec.name, spec.default) for spec in OUTPUT_OPTIONS})
        return await tool(**arguments, options=options)

    flat.__name__, flat.__qualname__, flat.__module__ = tool.__name__, tool.__qualname__, tool.__module__
    flat.__doc__ = inspect.getdoc(tool)
    flat.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": signature.return_annotation}
    flat.__dict__["__signature__"] = signature.replace(parameters=parameters)
    return flat


def tool_annotations(title: str) -> ToolAnnotations:
    """Both tools create files and call a remote service; neither changes or deletes anything that exists."""
    return ToolAnnotations(
        title=title, read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    )
