"""edit_image end to end: every input form reaches the service with its exact bytes; bad inputs never leave."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from helpers import MODES, connect, data_url_bytes, emulator_running, encode_image, static_server, text_of
from mcp.client.session import ClientRequestContext
from mcp.types import CallToolResult, ListRootsResult, Root
from PIL import Image

from mcp_server.emulator import EmulatorConfig, RunningEmulator

pytestmark = pytest.mark.anyio
TIMEOUT = 90


def png(size: tuple[int, int] = (256, 256), color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    return encode_image(Image.new("RGB", size, color))


def mask_png(size: tuple[int, int] = (256, 256)) -> bytes:
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    return encode_image(mask)


def responses_posts(emulator: RunningEmulator) -> list[Any]:
    return [r for r in emulator.state.requests if r.method == "POST" and r.path.endswith("/openai/v1/responses")]


def image_parts_of(post: Any) -> list[dict[str, Any]]:
    (message,) = post.json["input"]
    return [part for part in message["content"] if part["type"] == "input_image"]


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.parametrize("mode", MODES)
async def test_each_input_form_reaches_the_service_with_its_exact_bytes(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    out, extra, rooted = tmp_path / "out", tmp_path / "extra", tmp_path / "rooted dir"
    for folder in (out, extra, rooted):
        folder.mkdir()
    sources = {name: png(color=(i * 40, 255 - i * 40, 90)) for i, name in enumerate(["a", "b", "c", "d", "e", "f"])}
    (out / "in-output.png").write_bytes(sources["a"])
    (extra / "in-extra.png").write_bytes(sources["b"])
    (rooted / "rooted.png").write_bytes(sources["c"])

    async def list_roots(context: ClientRequestContext) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=rooted.as_uri())])

    env = {"FOUNDRY_IMAGE_MCP_INPUT_DIRS": str(extra), "FOUNDRY_IMAGE_MCP_TRUSTED_URL_HOSTS": "127.0.0.1"}
    routes = {"/img.png": (200, {"Content-Type": "image/png"}, sources["f"])}
    with static_server(routes) as web, anyio.fail_after(TIMEOUT):
        references = [
            str(out / "in-output.png"),
            "in-extra.png",
            (rooted / "rooted.png").as_uri(),
            "data:image/png;base64," + base64.b64encode(sources["d"]).decode(),
            base64.b64encode(sources["e"]).decode(),
            web.base_url + "/img.png",
        ]
        async with connect(emulator.endpoint, out, mode=mode, extra_env=env, list_roots_callback=list_roots) as client:
            result = await client.call_tool("edit_image", {"prompt": "make it blue", "images": references})
    meta = ok(result)
    (post,) = responses_posts(emulator)
    sent = [data_url_bytes(part["image_url"]) for part in image_parts_of(post)]
    assert sent == [sources[name] for name in "abcdef"]
    assert [item["kind"] for item in meta["inputs"]] == ["path", "path", "path", "data_url", "base64", "url"]
    assert all(item["sent_as"] == "inline" for item in meta["inputs"])
    assert meta["kind"] == "edit" and meta["parent"] is None
    assert Path(meta["path"]).read_bytes() == emulator.state.image_bytes(meta["response_id"])
    (version,) = emulator.state.agent_versions("foundry-image-mcp")
    assert version.definition["tools"][0]["action"] == "edit"


async def test_file_ids_pass_through_and_large_inputs_are_uploaded(emulator: RunningEmulator, tmp_path: Path) -> None:
    big = encode_image(Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)))
    assert len(big) > 4 * 1024 * 1024
    (tmp_path / "big.png").write_bytes(big)
    small = png()
    async with httpx2.AsyncClient(base_url=emulator.endpoint + "/") as http:
        uploaded = await http.post(
            "openai/v1/files",
            headers={"authorization": "Bearer k"},
            files={"file": ("small.png", small, "image/png")},
            data={"purpose": "assistants"},
        )
    file_id = uploaded.json()["id"]
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path) as client:
            result = await client.call_tool("edit_image", {"prompt": "sharpen", "images": [file_id, "big.png"]})
    meta = ok(result)
    (post,) = responses_posts(emulator)
    first, second = image_parts_of(post)
    assert first == {"type": "input_image", "file_id": file_id, "detail": "auto"}
    assert "image_url" not in second
    stored_object, stored_bytes = emulator.state.files[second["file_id"]]
    assert stored_bytes == big and stored_object.purpose == "assistants"
    assert [i["sent_as"] for i in meta["inputs"]] == ["file_id", "uploaded"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_follow_up_edit_continues_the_conversation_with_previous_response_id(
    emulator: RunningEmulator, tmp_path: Path, mode: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path, mode=mode) as client:
            first = ok(await client.call_tool("generate_image", {"prompt": "a house on a hill", "quality": "low"}))
            second_result = await client.call_tool(
                "edit_image", {"prompt": "now make the sky orange", "images": [first["uri"]]}
            )
    second = ok(second_result)
    _, edit_post = responses_posts(emulator)
    assert edit_post.json["previous_response_id"] == first["response_id"]
    assert image_parts_of(edit_post) == []
    assert second["parent"] == {"image_id": first["image_id"], "uri": first["uri"], "response_id": first["response_id"]}
    assert second["inputs"][0]["sent_as"] == "previous_response"
    assert Path(second["path"]).read_bytes() != Path(first["path"]).read_bytes()
    assert f"Continued from {first['uri']}" in text_of(second_result)


async def test_when_the_service_forgot_the_earlier_turn_the_image_bytes_are_sent(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connect(emulator.endpoint, tmp_path) as client:
            first = ok(await client.call_tool("generate_image", {"prompt": "a boat", "quality": "low"}))
            async with httpx2.AsyncClient(base_url=emulator.endpoint + "/") as http:
                deleted = await http.delete(
                    f"openai/v1/responses/{first['response_id']}", headers={"authorization": "Bearer k"}
                )
            assert deleted.status_code == 200
            second = ok(await client.call_tool("edit_image", {"prompt": "add a sail", "images": [first["uri"]]}))
    _, refused, retried = responses_posts(emulator)
    assert refused.json["previous_response_id"] == first["response_id"]
    assert "previous_response_id" not in retried.json
    (part,) = image_parts_of(retried)
    assert data_url_bytes(part["image_url"]) == Path(first["path"]).read_bytes()
    assert second["parent"]["response_id"] == first["response_id"]


@pytest.mark.parametrize("placeholders", [False, True], ids=["as-foundry", "binding-placeholders"])
async def test_a_mask_goes_straight_to_a_direct_call_with_the_uploaded_mask(tmp_path: Path, placeholders: bool) -> None:
    """`structured_inputs` do not reach image-tool fields (protocol §3.4), so masked edits skip the agent from the
    first call: no agent version with a placeholder, no call spent on a refusal, whatever the service allows."""
    (tmp_path / "photo.png").write_bytes(png())
    (tmp_path / "mask.png").write_bytes(mask_png())
    arguments = {"prompt": "a window", "images": ["photo.png"], "mask": "mask.png"}
    with emulator_running(EmulatorConfig(image_tool_placeholders=placeholders)) as emu, anyio.fail_after(TIMEOUT):
        async with connect(emu.endpoint, tmp_path) as client:
            first = ok(await client.call_tool("edit_image", arguments))
            second = ok(await client.call_tool("edit_image", {**arguments, "prompt": "a door"}))
        posts = responses_posts(emu)
        assert len(posts) == 2 and emu.state.agent_versions("foundry-image-mcp") == []
        for post in posts:
            assert "agent_reference" not in post.json and "structured_inputs" not in post.json
            assert post.json["model"] == "gpt-4.1"
            (tool,) = post.json["tools"]
            assert tool["action"] == "edit"
            assert emu.state.files[tool["input_image_mask"]["file_id"]][1] == mask_png()
        assert first["agent_version"] is None and second["agent_name"] is None
        assert first["inputs"][-1]["label"] == "mask"


async def test_bad_inputs_are_refused_with_a_clear_message_and_no_upstream_call(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(png())
    (out / "escape.png").symlink_to(outside / "secret.png")
    (out / "notes.png").write_text("this is not an image")
    (out / "photo.png").write_bytes(png())
    (out / "small-mask.png").write_bytes(mask_png((128, 128)))
    (out / "opaque-mask.png").write_bytes(png())
    routes = {
        "/to-private": (302, {"Location": "http://10.1.2.3/x.png"}, b""),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b""),
    }
    with static_server(routes) as web:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"images": [str(outside / "secret.png")]}, "images[0]"),
            ({"images": [f"{out}/../outside/secret.png"]}, "images[0]"),
            ({"images": ["photo.png", "escape.png"]}, "images[1]"),
            ({"images": ["notes.png"]}, "images[0]"),
            ({"images": ["photo.png"], "mask": "small-mask.png"}, "mask"),
            ({"images": ["photo.png"], "mask": "opaque-mask.png"}, "mask"),
            ({"images": ["photo.png"] * 17}, "16"),
            ({"images": ["https://10.0.0.1/x.png"]}, "images[0]"),
            ({"images": ["https://169.254.169.254/latest/meta-data"]}, "images[0]"),
            ({"images": [web.base_url + "/to-private"]}, "images[0]"),
            ({"images": [web.base_url + "/to-metadata"]}, "images[0]"),
            ({"images": ["foundry-image://images/img-20200101-000000-00000000"]}, "images[0]"),
            ({"images": ["C:\\Users\\me\\cat.png"]}, "images[0]"),
            ({"images": []}, "images"),
        ]
        env = {"FOUNDRY_IMAGE_MCP_TRUSTED_URL_HOSTS": "127.0.0.1"}
        with anyio.fail_after(TIMEOUT):
            async with connect(emulator.endpoint, out, extra_env=env) as client:
                results = [await client.call_tool("edit_image", {"prompt": "edit", **args}) for args, _ in cases]
        assert web.hits == ["/to-private", "/to-metadata"]
    for (args, label), result in zip(cases, results, strict=True):
        assert result.is_error, args
        assert label in text_of(result), (args, text_of(result))
        assert "Traceback" not in text_of(result)
    assert emulator.state.requests == []
    assert sorted(p.name for p in out.iterdir()) == [
        "escape.png",
        "notes.png",
        "opaque-mask.png",
        "photo.png",
        "small-mask.png",
    ]


async def test_input_fidelity_reaches_the_agent_version_and_is_refused_where_unsupported(tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(png())
    arguments = {"prompt": "keep the face", "images": ["photo.png"], "input_fidelity": "high"}
    project = {"gpt-4.1": "gpt-4.1", "gpt-image-2": "gpt-image-2", "mini": "gpt-image-1-mini"}
    with emulator_running(EmulatorConfig(deployments=project)) as emulator, anyio.fail_after(TIMEOUT):
        mini = {"AZURE_AI_IMAGE_DEPLOYMENT_NAME": "mini"}
        async with connect(emulator.endpoint, tmp_path, extra_env=mini) as client:
            refused = await client.call_tool("edit_image", arguments)
        assert refused.is_error and "input_fidelity" in text_of(refused) and "gpt-image-1-mini" in text_of(refused)
        # The deployment's model was looked up; nothing was sent to the agents or responses routes.
        assert {r.path.split("/")[4] for r in emulator.state.requests} == {"deployments"}
        two = {"AZURE_AI_IMAGE_DEPLOYMENT_NAME": "gpt-image-2"}
        async with connect(emulator.endpoint, tmp_path, extra_env=two) as client:
            ok(await client.call_tool("edit_image", arguments))
        (version,) = emulator.state.agent_versions("foundry-image-mcp")
    assert version.definition["tools"][0]["input_fidelity"] == "high"
