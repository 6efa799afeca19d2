from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from mcp_server.images.records import image_id_from_uri
from mcp_server.images.store import DiskFiles


def png(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_saved_images_keep_their_exact_bytes_and_metadata(tmp_path: Path) -> None:
    store = DiskFiles(tmp_path / "images")
    data = png()
    record = store.save(data, output_format="png", width=8, height=8, metadata={"prompt": "p", "response_id": "r"})
    assert store.read_bytes(record) == data
    assert store.path_of(record).suffix == ".png"
    meta = json.loads((tmp_path / "images" / f"{record.image_id}.json").read_text())
    assert meta["prompt"] == "p" and meta["bytes"] == len(data) and meta["mime_type"] == "image/png"
    assert image_id_from_uri(record.uri) == record.image_id
    assert not list((tmp_path / "images").glob(".*.tmp"))


def test_a_new_store_on_the_same_directory_lists_earlier_images_newest_first(tmp_path: Path) -> None:
    first = DiskFiles(tmp_path).save(png(), output_format="png", width=8, height=8, metadata={})
    second = DiskFiles(tmp_path).save(png((4, 4)), output_format="jpeg", width=4, height=4, metadata={})
    listed = DiskFiles(tmp_path).records()
    assert {r.image_id for r in listed} == {first.image_id, second.image_id}
    assert listed == sorted(listed, key=lambda r: r.image_id, reverse=True)
    assert DiskFiles(tmp_path).get(second.image_id) == second
    assert second.file_name.endswith(".jpg")


def test_images_without_metadata_or_with_tampered_metadata_are_not_listed(tmp_path: Path) -> None:
    store = DiskFiles(tmp_path)
    record = store.save(png(), output_format="png", width=8, height=8, metadata={})
    (tmp_path / "img-20260101-000000-deadbeef.png").write_bytes(png())
    meta_path = tmp_path / f"{record.image_id}.json"
    tampered = json.loads(meta_path.read_text()) | {"file_name": "../../etc/passwd"}
    meta_path.write_text(json.dumps(tampered))
    assert store.records() == []
    assert store.get(record.image_id) is None


def test_hostile_ids_and_foreign_uris_resolve_to_nothing(tmp_path: Path) -> None:
    store = DiskFiles(tmp_path)
    for image_id in ("../x", "img-../../etc", "", "img-20260101-000000-deadbeef/../x"):
        assert store.get(image_id) is None
    assert image_id_from_uri("file:///etc/passwd") is None
    assert image_id_from_uri("foundry-image://images/../secret") is None
    assert store.records() == []
