"""Command line: `serve` (the default, stdio), `emulator`, `demo`.

stdout belongs to the stdio protocol, so everything here logs to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_server import __version__
from mcp_server.emulator.fault_names import FAULTS
from mcp_server.errors import ConfigurationError

if TYPE_CHECKING:  # imported when needed: pydantic is not needed for --help or --version
    from mcp_server.config import Settings

logger = logging.getLogger("foundry_image_mcp")

COMMANDS = ("serve", "emulator", "demo", "doctor")
EMULATOR_KEY = "emulator-local-key"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foundry-image-mcp",
        description="MCP server for image generation through Azure AI Foundry Agent Service.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default; the default command)")
    _add_config_flags(serve)
    serve.add_argument("--emulator", action="store_true", help="use a built-in Foundry emulator; no Azure needed")
    serve.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, type=str.upper)
    http = serve.add_argument_group("streamable HTTP transport")
    http.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="stdio (default) or http")
    http.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    http.add_argument("--port", type=int, default=8000, help="port to bind (default 8000; 0 picks a free one)")
    http.add_argument("--stateless", action="store_true", help="no sessions: any worker can serve any request")
    http.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve on a non-loopback address without inbound auth (only behind something that authenticates)",
    )
    http.add_argument("--allowed-host", action="append", default=[], help="extra Host header value (repeatable)")
    http.add_argument("--allowed-origin", action="append", default=[], help="extra Origin value (repeatable)")
    http.add_argument("--max-request-mb", type=float, default=64.0, help="largest request body in MiB (default 64)")
    http.add_argument("--public-url", help="the server's URL as clients reach it (for the OAuth resource metadata)")

    emulator = sub.add_parser("emulator", help="run the Foundry emulator (offline development)")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8765)
    emulator.add_argument("--latency", type=float, default=0.0, help="seconds added to each image generation")
    emulator.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault_spec,
        metavar="NAME[:COUNT]",
        help="inject fault NAME into the next COUNT (default 1) responses creates; repeatable. Names: "
        + ", ".join(FAULTS),
    )
    emulator.add_argument(
        "--stall-seconds", type=float, default=30.0, help="how long the 'stall' fault holds an answer back"
    )
    emulator.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, type=str.upper)

    _add_demo(sub.add_parser("demo", help="generate an image end to end against the emulator; no Azure needed"))

    doctor = sub.add_parser(
        "doctor", help="check configuration, credentials, endpoint, deployments, agent and image deployment"
    )
    doctor.add_argument("--live", action="store_true", help="also generate one low-quality image (costs one call)")
    _add_config_flags(doctor)
    doctor.add_argument("--log-level", default="ERROR", choices=LOG_LEVELS, type=str.upper)
    return parser


def _add_demo(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("prompt", nargs="?", default=None, help="what to draw")
    demo.add_argument("--output-dir", type=Path, help="where images are saved (FOUNDRY_IMAGE_MCP_OUTPUT_DIR)")
    demo.add_argument(
        "--open",
        action="store_true",
        help="instead, serve over HTTP against the emulator and open the image studio in the browser",
    )
    demo.add_argument("--port", type=int, default=0, help="with --open: port to bind (default 0, a free one)")
    demo.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS, type=str.upper)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="Foundry project endpoint (AZURE_AI_PROJECT_ENDPOINT)")
    parser.add_argument(
        "--model-deployment",
        help="orchestrator model deployment (AZURE_AI_MODEL_DEPLOYMENT_NAME; default: the project's only one)",
    )
    parser.add_argument(
        "--image-deployment",
        help="image model deployment (AZURE_AI_IMAGE_DEPLOYMENT_NAME; default: the project's only one)",
    )
    parser.add_argument("--agent-name", help="agent name (AZURE_AI_AGENT_NAME)")
    parser.add_argument("--output-dir", type=Path, help="where images are saved (FOUNDRY_IMAGE_MCP_OUTPUT_DIR)")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration flags, as `Settings.load` overrides (None where not given)."""
    return {
        "endpoint": args.endpoint,
        "model_deployment": args.model_deployment,
        "image_deployment": args.image_deployment,
        "agent_name": args.agent_name,
        "output_dir": args.output_dir,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "serve")
    args = _parser().parse_args(args_list)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "emulator":
            return _run_emulator(args)
        if args.command == "demo":
            demo = {"api_key": EMULATOR_KEY, "output_dir": args.output_dir}
            if args.open:
                from mcp_server.cli.demo_studio import run_studio_demo

                return run_studio_demo(demo, args.port)
            from mcp_server.cli.demo import run_demo

            return run_demo(args.prompt, demo)
        if args.command == "doctor":
            from mcp_server.cli.doctor import run_doctor

            return run_doctor(config_overrides(args), live=args.live)
        return _serve(args)
    except ConfigurationError as exc:
        print(f"foundry-image-mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    from mcp_server.config import Settings

    overrides = config_overrides(args)
    if not args.emulator:
        return _run_server(Settings.load(**overrides), args)
    from mcp_server.emulator import EmulatorConfig, start_emulator

    with start_emulator(EmulatorConfig()) as emulator:
        logger.warning(
            "Using the built-in Foundry emulator at %s: images are rendered locally, not by Azure.", emulator.endpoint
        )
        # The deployments are found in the emulator's project (gpt-4.1 and gpt-image-2), as on Azure.
        overrides.update(endpoint=emulator.endpoint, api_key=EMULATOR_KEY, emulator=True)
        return _run_server(Settings.load(**overrides), args)


def _run_server(settings: Settings, args: argparse.Namespace) -> int:
    logger.info(
        "Serving over %s: endpoint %s, agent %s, image deployment %s, auth %s, images in %s",
        args.transport,
        settings.endpoint,
        settings.agent_name,
        settings.image_deployment or "found at the first call",
        settings.auth_mode,
        settings.output_dir,
    )
    if args.transport == "http":
        from mcp_server.http.app import HttpOptions, serve_http

        options = HttpOptions(
            host=args.host,
            port=args.port,
            stateless=args.stateless,
            allow_unauthenticated=args.allow_unauthenticated,
            allowed_hosts=tuple(args.allowed_host),
            allowed_origins=tuple(args.allowed_origin),
            max_request_bytes=int(args.max_request_mb * 1024 * 1024),
            public_url=args.public_url,
        )
        serve_http(settings, options)
        return 0
    import anyio

    from mcp_server.stdio.transport import serve_stdio
    from mcp_server.tools.server import build_server

    # What `MCPServer.run()` does for stdio, over mcp_server.stdio's transport: it answers the malformed
    # requests the SDK's own stdio reader drops (docs/upstream/mcp-python-sdk-stdio-dropped-requests.md).
    anyio.run(serve_stdio, build_server(settings))
    return 0


def _fault_spec(text: str) -> tuple[str, int]:
    from mcp_server.emulator.fault_names import parse_fault_spec

    try:
        return parse_fault_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_emulator(args: argparse.Namespace) -> int:
    from mcp_server.emulator import EmulatorConfig, serve_emulator

    config = EmulatorConfig(latency=args.latency, faults=tuple(args.fault), stall_seconds=args.stall_seconds)
    serve_emulator(config, host=args.host, port=args.port)
    return 0
