"""Input references for edit_image: every accepted form, and every refusal naming its input."""

from __future__ import annotations

import base64
import io
import os
import struct
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import anyio
import mcp.types
import pytest
from PIL import Image

from mcp_server.errors import InvalidInputError
from mcp_server.images.local import LocalStore
from mcp_server.images.records import URI_PREFIX
from mcp_server.images.store import DiskFiles
from mcp_server.inputs import (
    MAX_IMAGES,
    InputResolver,
    ResolvedImage,
    UrlFetcher,
    looks_like_path,
    roots_to_dirs,
)
from mcp_server.inputs.paths import to_local_path

pytestmark = pytest.mark.anyio
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file system behaviour")


def encode(size: tuple[int, int] = (32, 24), mode: str = "RGB", fmt: str = "PNG", **save: object) -> bytes:
    colors = {"RGB": (200, 30, 30), "RGBA": (0, 0, 0, 0), "L": 128, "LA": (128, 0), "P": 3}
    buffer = io.BytesIO()
    Image.new(mode, size, colors[mode]).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def noisy_png(size: tuple[int, int] = (64, 64)) -> bytes:
    """A PNG that does not compress: its byte size is about 3 × pixels."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width`×`height` but which holds almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


PNG = encode()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    out, imgs = tmp_path / "out", tmp_path / "imgs"
    out.mkdir()
    imgs.mkdir()
    return out, imgs


@pytest.fixture
async def resolver(dirs: tuple[Path, Path]) -> AsyncIterator[InputResolver]:
    out, imgs = dirs
    async with UrlFetcher() as fetcher:
        yield InputResolver(store=LocalStore(out), allowed_dirs=[out, imgs], fetcher=fetcher, max_bytes=20_000)


async def refused(resolver: InputResolver, reference: str, label: str = "images[0]") -> InvalidInputError:
    with anyio.fail_after(10), pytest.raises(InvalidInputError) as caught:
        await resolver.resolve(reference, label)
    assert caught.value.message.startswith(f"{label} ("), caught.value.message
    return caught.value


# ---------------------------------------------------------------- accepted forms


async def test_resource_uri_resolves_to_the_stored_bytes(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    record = DiskFiles(dirs[0]).save(PNG, output_format="png", width=32, height=24, metadata={})
    image = await resolver.resolve(record.uri, "images[0]")
    assert (image.kind, image.data, image.image_id) == ("resource", PNG, record.image_id)
    assert image.path == (dirs[0] / record.file_name).resolve()
    assert (image.output_format, image.width, image.height, image.has_alpha) == ("png", 32, 24, False)


async def test_unknown_resource_uri_is_refused(resolver: InputResolver) -> None:
    error = await refused(resolver, URI_PREFIX + "img-20240101-000000-0123abcd")
    assert "no stored image with that URI; use resources/list" in error.message
    assert "no stored image" in (await refused(resolver, URI_PREFIX + "../../etc/passwd")).message


async def test_absolute_relative_and_file_uri_paths(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    target = dirs[1] / "sub dir" / "cat photo.png"
    target.parent.mkdir()
    target.write_bytes(PNG)
    for reference in (
        str(target),
        "sub dir/cat photo.png",  # relative: looked up in out/ (missing), then imgs/
        target.as_uri(),  # file:///.../sub%20dir/cat%20photo.png
        "file://localhost" + target.as_uri().removeprefix("file://"),
        "  " + str(target) + "\n",
    ):
        image = await resolver.resolve(reference, "images[3]")
        assert (image.kind, image.data, image.path, image.label) == ("path", PNG, target, "images[3]"), reference
    assert "%20" in target.as_uri()


async def test_relative_path_first_allowed_dir_wins(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    first, second = encode((20, 20)), encode((30, 30))
    (dirs[0] / "same.png").write_bytes(first)
    (dirs[1] / "same.png").write_bytes(second)
    assert (await resolver.resolve("same.png", "images[0]")).data == first


async def test_home_relative_path(
    resolver: InputResolver, dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(dirs[1].parent))
    (dirs[1] / "home.png").write_bytes(PNG)
    assert (await resolver.resolve("~/imgs/home.png", "images[0]")).data == PNG


async def test_roots_extend_the_allowed_dirs(resolver: InputResolver, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "in.png").write_bytes(PNG)
    await refused(resolver, str(project / "in.png"))
    assert (await resolver.resolve(str(project / "in.png"), "images[0]", roots=[project])).data == PNG
    assert (await resolver.resolve("in.png", "images[0]", roots=[project])).data == PNG


async def test_data_url_and_bare_base64(resolver: InputResolver) -> None:
    jpeg, webp = encode(fmt="JPEG"), encode(mode="RGBA", fmt="WEBP", lossless=True)
    b64 = base64.b64encode(PNG).decode()
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    cases: list[tuple[str, str, bytes, str]] = [
        (f"data:image/png;base64,{b64}", "data_url", PNG, "png"),
        (f"DATA:image/jpg;base64,{base64.b64encode(jpeg).decode()}", "data_url", jpeg, "jpeg"),
        (f"data:image/webp;base64,{wrapped[:0]}{base64.b64encode(webp).decode()}", "data_url", webp, "webp"),
        (f"data:image/png;base64,{wrapped}", "data_url", PNG, "png"),
        (b64, "base64", PNG, "png"),
        (base64.b64encode(jpeg).decode(), "base64", jpeg, "jpeg"),  # starts with /9j/: not a path
        (wrapped, "base64", PNG, "png"),
    ]
    for reference, kind, data, fmt in cases:
        image = await resolver.resolve(reference, "images[1]")
        assert (image.kind, image.data, image.output_format) == (kind, data, fmt), reference[:40]
        assert len(image.reference) < 100
    assert (await resolver.resolve(cases[2][0], "images[0]")).has_alpha is True


async def test_file_id_passes_through(resolver: InputResolver) -> None:
    for file_id in ("file-abc_123-XYZ", "assistant-Q1w2E3"):
        image = await resolver.resolve(file_id, "images[0]")
        assert (image.kind, image.file_id, image.data, image.output_format, image.mime_type) == (
            "file_id",
            file_id,
            None,
            None,
            None,
        )
        with pytest.raises(ValueError):
            image.data_url()


async def test_resolved_image_data_url_round_trips(resolver: InputResolver) -> None:
    image = await resolver.resolve(base64.b64encode(PNG).decode(), "images[0]")
    assert image.mime_type == "image/png"
    assert image.data_url() == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert isinstance(image, ResolvedImage)


def test_windows_forms_parse() -> None:
    assert to_local_path(r"C:\x\y.png") == PureWindowsPath("C:/x/y.png")
    assert to_local_path("C:/x/y.png") == PureWindowsPath(r"C:\x\y.png")
    unc = to_local_path(r"\\server\share\y.png")
    assert isinstance(unc, PureWindowsPath)
    assert (unc.drive, unc.name) == (r"\\server\share", "y.png")
    assert to_local_path("file:///C:/x/my%20y.png") == PureWindowsPath(r"C:\x\my y.png")
    assert to_local_path("file:///c|/x/y.png") == PureWindowsPath(r"C:\x\y.png")
    assert to_local_path("file://server/share/y.png") == PureWindowsPath(r"\\server\share\y.png")
    assert to_local_path(r"sub\y.png", windows=True) == PureWindowsPath("sub/y.png")
    assert to_local_path("file:///tmp/a%20b.png", windows=False) == PurePosixPath("/tmp/a b.png")


@posix_only
async def test_windows_paths_are_refused_on_posix(resolver: InputResolver) -> None:
    for reference in (r"C:\x\y.png", "C:/x/y.png", r"\\server\share\y.png", "file:///C:/x/y.png"):
        error = await refused(resolver, reference, "images[2]")
        assert f"is a Windows path but the server runs on {sys.platform}" in error.message
        assert error.hint


# ---------------------------------------------------------------- confinement


async def test_paths_outside_the_allowed_dirs_are_refused(
    resolver: InputResolver, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG)
    evil = tmp_path / "imgs-evil"  # shares the prefix of imgs/
    evil.mkdir()
    (evil / "x.png").write_bytes(PNG)
    for reference in (
        str(secret),
        "../secret.png",
        str(dirs[1] / ".." / "secret.png"),
        str(evil / "x.png"),
        secret.as_uri(),
        "/etc/passwd",
        str(tmp_path / "missing-outside.png"),  # outside wins over missing: existence is not revealed
    ):
        error = await refused(resolver, reference, "images[1]")
        assert error.message.endswith("is outside the directories this server may read."), reference
        assert error.hint is not None and str(dirs[1]) in error.hint and "data URL" in error.hint


@posix_only
async def test_symlinks_leaving_the_dirs_are_refused(
    resolver: InputResolver, dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG)
    (dirs[1] / "escape.png").symlink_to(secret)
    (dirs[1] / "escape-dir").symlink_to(tmp_path)
    (dirs[1] / "real.png").write_bytes(PNG)
    (dirs[1] / "inside.png").symlink_to(dirs[1] / "real.png")
    (dirs[0] / "cross.png").symlink_to(dirs[1] / "real.png")
    for reference in ("escape.png", str(dirs[1] / "escape.png"), "escape-dir/secret.png"):
        assert "is outside" in (await refused(resolver, reference)).message
    assert (await resolver.resolve("inside.png", "images[0]")).path == dirs[1] / "real.png"
    assert (await resolver.resolve(str(dirs[0] / "cross.png"), "images[0]")).data == PNG


async def test_missing_files_and_directories_are_refused(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    assert (await refused(resolver, "nope.png")).message.endswith("does not exist.")
    assert (await refused(resolver, str(dirs[1] / "nope.png"))).message.endswith("does not exist.")
    (dirs[1] / "folder.png").mkdir()
    assert "is a directory" in (await refused(resolver, "folder.png")).message
    assert "is a directory" in (await refused(resolver, str(dirs[1]), "mask")).message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
async def test_a_fifo_is_refused_without_blocking(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    os.mkfifo(dirs[1] / "pipe.png")
    error = await refused(resolver, str(dirs[1] / "pipe.png"))  # opening it would block forever
    assert "is not a regular file" in error.message


# ---------------------------------------------------------------- image checks


async def test_files_that_are_not_acceptable_images_are_refused(
    resolver: InputResolver, dirs: tuple[Path, Path]
) -> None:
    cases = {
        "text.png": (b"just some text, not an image\n" * 4, "is not an image"),
        "anim.gif": (encode(fmt="GIF"), "is a GIF image; only PNG, JPEG and WebP are accepted"),
        "pic.bmp": (encode(fmt="BMP"), "is a BMP image"),
        "tiny.png": (encode((8, 8)), "is 8×8 pixels; each side must be at least 16"),
        "wide.png": (png_header_only(17000, 16), "each side must be at most 16384"),
        "many.png": (png_header_only(9000, 9000), "at most 64 megapixels"),
        "bomb.png": (png_header_only(20000, 20000), "too many pixels"),
        "cut.png": (PNG[: len(PNG) // 2], "is not a complete, readable image"),
        "empty.png": (b"", "is empty"),
    }
    for name, (data, expected) in cases.items():
        (dirs[1] / name).write_bytes(data)
        error = await refused(resolver, name, "images[4]")
        assert expected in error.message, (name, error.message)
        assert "just some text" not in str(error)


async def test_inputs_at_or_over_the_byte_cap_are_refused(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    big, huge = noisy_png((64, 64)), noisy_png((100, 100))  # about 12 KB and 30 KB: under and over the cap
    assert len(big) < 20_000 <= len(huge)
    (dirs[1] / "big.png").write_bytes(huge)
    assert "must be smaller than 20000 bytes" in (await refused(resolver, "big.png")).message
    b64 = base64.b64encode(huge).decode()
    assert "must be smaller" in (await refused(resolver, b64)).message
    assert "must be smaller" in (await refused(resolver, "data:image/png;base64," + b64)).message
    assert (await resolver.resolve(base64.b64encode(big).decode(), "images[0]")).data == big


async def test_bad_base64_and_data_urls_are_refused(resolver: InputResolver) -> None:
    b64 = base64.b64encode(PNG).decode()
    cases = {
        "data:image/png;base64,@@@" + b64: "not valid base64",
        "data:image/gif;base64," + b64: "type 'image/gif'",
        "data:image/png," + b64: "without ';base64'",
        "data:image/png;base64": "not a valid data URL",
        b64[:-2] + "=": "not valid base64",
        base64.b64encode(b"x" * 90).decode(): "is not an image",
    }
    for reference, expected in cases.items():
        error = await refused(resolver, reference)
        assert expected in error.message, (reference[:40], error.message)
        assert len(error.message) < 300


async def test_unrecognised_and_empty_references_are_refused(resolver: InputResolver) -> None:
    assert "is empty" in (await refused(resolver, "   ")).message
    error = await refused(resolver, "a picture of a cat")
    assert "is not a resource URI, path, file:// URI, data URL, https URL, file id or base64 image" in error.message
    assert "https URL" in (await refused(resolver, "ftp://example.com/x.png")).message
    assert "use https" in (await refused(resolver, "http://example.com/x.png")).message


# ---------------------------------------------------------------- resolve_all


async def test_resolve_all_labels_each_image_and_the_mask(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    mask = encode((32, 24), mode="RGBA")
    (dirs[1] / "mask.png").write_bytes(mask)
    images, resolved_mask = await resolver.resolve_all([base64.b64encode(PNG).decode(), "file-abc"], "mask.png")
    assert [image.label for image in images] == ["images[0]", "images[1]"]
    assert resolved_mask is not None and (resolved_mask.label, resolved_mask.data) == ("mask", mask)
    assert await resolver.resolve_all(["file-a"], "file-m") == (
        [await resolver.resolve("file-a", "images[0]")],
        await resolver.resolve("file-m", "mask"),
    )
    # images[0] a file id: its size is unknown, so any mask size is accepted
    _, other = await resolver.resolve_all(["file-a"], "data:image/png;base64," + base64.b64encode(mask).decode())
    assert other is not None and other.width == 32


async def test_resolve_all_counts_and_labels_refusals(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInputError, match=r"^images \(\[\]\): give at least one image"):
        await resolver.resolve_all([], None)
    with pytest.raises(InvalidInputError, match=f"at most {MAX_IMAGES} images"):
        await resolver.resolve_all(["file-a"] * (MAX_IMAGES + 1), None)
    assert len((await resolver.resolve_all(["file-a"] * MAX_IMAGES, None))[0]) == MAX_IMAGES
    with pytest.raises(InvalidInputError, match=r"^images\[2\] \(/etc/passwd\): is outside"):
        await resolver.resolve_all(["file-a", "file-b", "/etc/passwd"], None)


async def test_masks_are_checked(resolver: InputResolver, dirs: tuple[Path, Path]) -> None:
    first = "data:image/png;base64," + base64.b64encode(PNG).decode()  # 32×24
    cases = {
        "opaque.png": (encode((32, 24)), "a PNG without an alpha channel"),
        "photo.jpg": (encode((32, 24), fmt="JPEG"), "is a JPEG image without an alpha channel"),
        "alpha.webp": (encode((32, 24), mode="RGBA", fmt="WEBP", lossless=True), "is a WEBP image, not a PNG"),
        "small.png": (encode((16, 16), mode="RGBA"), "is 16×16 pixels but images[0] is 32×24"),
    }
    for name, (data, expected) in cases.items():
        (dirs[1] / name).write_bytes(data)
        with pytest.raises(InvalidInputError) as caught:
            await resolver.resolve_all([first], name)
        assert caught.value.message.startswith(f"mask ({name}): "), caught.value.message
        assert expected in caught.value.message
        if name != "small.png":
            assert "the mask must be a PNG with an alpha channel; fully transparent pixels mark the area to edit" in (
                caught.value.message
            )
    (dirs[1] / "la.png").write_bytes(encode((32, 24), mode="LA"))
    _, mask = await resolver.resolve_all([first], "la.png")
    assert mask is not None and mask.has_alpha
    (dirs[1] / "trns.png").write_bytes(encode((32, 24), mode="P", transparency=3))
    _, mask = await resolver.resolve_all([first], "trns.png")
    assert mask is not None and mask.has_alpha


# ---------------------------------------------------------------- helpers for the tool


def test_roots_to_dirs() -> None:
    assert roots_to_dirs(None) == []
    roots = mcp.types.ListRootsResult(
        roots=[
            mcp.types.Root(uri="file:///home/me/project"),  # type: ignore[arg-type]
            mcp.types.Root(uri="file:///tmp/a%20b", name="spaces"),  # type: ignore[arg-type]
            mcp.types.Root.model_construct(uri="https://example.com/not-a-dir"),
        ]
    )
    expected = [Path("/home/me/project"), Path("/tmp/a b")]
    assert roots_to_dirs(roots) == (expected if sys.platform != "win32" else [])


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("/abs/cat.png", True),
        ("cat.png", True),
        ("sub/cat", True),
        ("./cat", True),
        ("~/cat.png", True),
        ("file:///tmp/cat.png", True),
        ("FILE:///tmp/cat.png", True),
        (r"C:\x\cat.png", True),
        (r"\\server\share\cat.png", True),
        ("  /abs/cat.png ", True),
        (URI_PREFIX + "img-20240101-000000-0123abcd", False),
        ("data:image/png;base64,iVBORw0KGgo=", False),
        ("https://example.com/cat.png", False),
        ("file-abc123", False),
        ("assistant-xyz", False),
        (base64.b64encode(encode(fmt="JPEG")).decode(), False),
        (base64.b64encode(PNG).decode(), False),
        ("a picture of a cat", False),
        ("", False),
    ],
)
def test_looks_like_path(reference: str, expected: bool) -> None:
    assert looks_like_path(reference) is expected
