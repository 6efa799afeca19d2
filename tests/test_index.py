"""The SQLite index of an output directory (`mcp_server/images/index.py`): pages, cursors, lookups, and staying
in step with the sidecars, which remain the truth, whoever writes them."""

from __future__ import annotations

import base64
import io
import json
import os
import select
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mcp_server.images.index import INDEX_NAME, ImageIndex, decode_cursor, encode_cursor
from mcp_server.images.indexdb import MAX_IDLE, SCHEMA_VERSION
from mcp_server.images.indexscan import recorded_mtime, settled
from mcp_server.images.records import ImageRecord, new_image_id, new_record
from mcp_server.images.store import DiskFiles, load_sidecar

ROOT = Path(__file__).resolve().parent.parent
BASE = datetime(2020, 1, 1, tzinfo=UTC)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def stored(root: Path, when: datetime | None = None, *, output_format: str = "png") -> ImageRecord:
    """An image written the way `DiskFiles.write` lays it out (bytes, then sidecar), without the fsyncs."""
    image_id = new_image_id(when) if when is not None else None
    record = new_record(
        b"img", output_format=output_format, width=1, height=1, metadata={"prompt": "p"}, image_id=image_id
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / record.file_name).write_bytes(b"img")
    (root / f"{record.image_id}.json").write_text(record.model_dump_json(indent=2))
    return record


def populate(root: Path, count: int, start: datetime = BASE) -> list[ImageRecord]:
    return [stored(root, start + timedelta(seconds=i)) for i in range(count)]


def pages(index: ImageIndex, limit: int = 100) -> list[list[str]]:
    """Every page of one listing, as ids."""
    found: list[list[str]] = []
    records, cursor = index.page(None, limit)
    found.append([r.image_id for r in records])
    while cursor is not None:
        records, cursor = index.page(cursor, limit)
        found.append([r.image_id for r in records])
    return found


def listed(index: ImageIndex) -> list[str]:
    return [image_id for page in pages(index) for image_id in page]


def newest_first(records: list[ImageRecord]) -> list[str]:
    return sorted((r.image_id for r in records), reverse=True)


def age(root: Path) -> None:
    """Date the directory's last change a minute back, as if nothing had changed in it since."""
    past = time.time_ns() - 60 * 1_000_000_000
    os.utime(root, ns=(past, past))


@pytest.fixture
def opened() -> Iterator[list[ImageIndex]]:
    """Indexes a test opens, closed after it."""
    indexes: list[ImageIndex] = []
    yield indexes
    for index in indexes:
        index.close()


def open_index(opened: list[ImageIndex], root: Path) -> ImageIndex:
    index = ImageIndex(root)
    opened.append(index)
    return index


def test_pages_are_newest_first_and_the_last_has_no_cursor(tmp_path: Path, opened: list[ImageIndex]) -> None:
    records = populate(tmp_path, 250)
    index = open_index(opened, tmp_path)
    found = pages(index)
    assert [len(page) for page in found] == [100, 100, 50]
    assert [i for page in found for i in page] == newest_first(records)
    assert index.page(None, 250)[1] is None  # exactly the images left: no cursor to an empty page
    first, cursor = index.page(None, 100)
    assert first == sorted(records, key=lambda r: r.image_id, reverse=True)[:100]  # whole records, as stored
    assert cursor is not None and "img-" not in cursor


def test_the_index_is_a_hidden_file_beside_the_images(tmp_path: Path, opened: list[ImageIndex]) -> None:
    records = populate(tmp_path, 3)
    index = open_index(opened, tmp_path)
    assert (tmp_path / INDEX_NAME).is_file() and INDEX_NAME.startswith(".")
    assert sorted(p.stem for p in tmp_path.glob("img-*.json")) == sorted(r.image_id for r in records)
    assert [r.image_id for r in DiskFiles(tmp_path).records()] == listed(index)


def test_a_missing_directory_lists_nothing_and_is_not_created(tmp_path: Path, opened: list[ImageIndex]) -> None:
    root = tmp_path / "images"
    index = open_index(opened, root)
    assert index.page(None, 100) == ([], None)
    assert index.get(new_image_id()) is None
    assert not root.exists()
    record = DiskFiles(root).save(png(), output_format="png", width=2, height=2, metadata={})
    index.add(record)
    assert listed(index) == [record.image_id]


def test_images_stored_between_pages_are_neither_skipped_nor_repeated(tmp_path: Path, opened: list[ImageIndex]) -> None:
    originals = populate(tmp_path, 250)
    index = open_index(opened, tmp_path)
    records, cursor = index.page(None, 100)
    seen = [r.image_id for r in records]
    other = open_index(opened, tmp_path)  # another process's index of the same directory
    while cursor is not None:
        # Newer images, and images whose ids fall among those not listed yet (the same second, any hex).
        other.add(stored(tmp_path))
        other.add(stored(tmp_path, BASE + timedelta(seconds=10)))
        stored(tmp_path, BASE + timedelta(seconds=20))  # behind both indexes' backs
        records, cursor = index.page(cursor, 100)
        seen += [r.image_id for r in records]
    assert len(seen) == len(set(seen)) and seen == sorted(seen, reverse=True)
    assert [i for i in seen if i in {r.image_id for r in originals}] == newest_first(originals)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        "é",
        "x" * 10_000,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"after": "img-20200101-000000-deadbeef"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"v": "i0", "after": "img-20200101-000000-deadbeef"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"v": "i1", "after": "../../etc/passwd"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"v": "i1", "after": 7}).encode()).decode(),
        encode_cursor("img-20200101-000000-deadbeef") + "==",
        encode_cursor("img-20200101-000000-deadbeef") + "A",
        base64.b64encode(b'{"v":"i1","after":"img-20200101-000000-deadbeef","x":1}').decode(),
    ],
)
def test_a_cursor_this_index_did_not_make_is_refused(tmp_path: Path, opened: list[ImageIndex], cursor: str) -> None:
    populate(tmp_path, 3)
    index = open_index(opened, tmp_path)
    with pytest.raises(ValueError):
        index.page(cursor, 100)


def test_cursors_round_trip_and_limits_are_checked(tmp_path: Path, opened: list[ImageIndex]) -> None:
    assert decode_cursor(encode_cursor("img-20200101-000000-deadbeef")) == "img-20200101-000000-deadbeef"
    index = open_index(opened, tmp_path)
    with pytest.raises(ValueError):
        index.page(None, 0)
    # A cursor names a position, not an image: it holds after that image is deleted, and in an empty directory.
    assert index.page(encode_cursor("img-20200101-000000-deadbeef"), 10) == ([], None)


def test_the_index_is_rebuilt_when_its_file_is_missing(tmp_path: Path, opened: list[ImageIndex]) -> None:
    records = populate(tmp_path, 30)
    ImageIndex(tmp_path).close()
    for name in (INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    assert listed(open_index(opened, tmp_path)) == newest_first(records)
    assert (tmp_path / INDEX_NAME).is_file()


@pytest.mark.parametrize("garbage", [b"garbage", os.urandom(8192), b"SQLite format 3\x00" + os.urandom(4080)])
def test_the_index_is_rebuilt_when_its_file_is_garbage(
    tmp_path: Path, opened: list[ImageIndex], garbage: bytes
) -> None:
    records = populate(tmp_path, 30)
    (tmp_path / INDEX_NAME).write_bytes(garbage)
    index = open_index(opened, tmp_path)
    assert listed(index) == newest_first(records)
    assert index.get(records[0].image_id) == records[0]


def recorded(root: Path) -> int | None:
    conn = sqlite3.connect(root / INDEX_NAME)
    try:
        return recorded_mtime(conn)
    finally:
        conn.close()


def test_an_index_found_damaged_while_open_is_rebuilt(
    tmp_path: Path, opened: list[ImageIndex], caplog: pytest.LogCaptureFixture
) -> None:
    records = populate(tmp_path, 300)
    index = open_index(opened, tmp_path)
    conn = sqlite3.connect(tmp_path / INDEX_NAME)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row into the file itself
    conn.close()
    with (tmp_path / INDEX_NAME).open("r+b") as handle:
        handle.seek(4096)  # past the header page: the file opens, its tables do not read
        handle.write(os.urandom((tmp_path / INDEX_NAME).stat().st_size - 4096))
    assert listed(index) == newest_first(records)  # the checkpoint made the connections read the file again
    assert "is unusable (database disk image is malformed)" in caplog.text
    assert listed(index) == newest_first(records) and index.get(records[0].image_id) == records[0]


def _set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={version}")
    conn.commit()
    conn.close()


def test_the_index_is_rebuilt_when_it_has_another_schema_version(tmp_path: Path, opened: list[ImageIndex]) -> None:
    records = populate(tmp_path, 30)
    ImageIndex(tmp_path).close()
    _set_user_version(tmp_path / INDEX_NAME, SCHEMA_VERSION + 1)
    assert listed(open_index(opened, tmp_path)) == newest_first(records)
    conn = sqlite3.connect(tmp_path / INDEX_NAME)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_another_programs_database_at_the_index_path_is_replaced(tmp_path: Path, opened: list[ImageIndex]) -> None:
    records = populate(tmp_path, 5)
    conn = sqlite3.connect(tmp_path / INDEX_NAME)
    conn.execute("CREATE TABLE images (anything)")
    conn.commit()
    conn.close()
    assert listed(open_index(opened, tmp_path)) == newest_first(records)


def test_sync_catches_up_with_images_added_and_removed_behind_its_back(
    tmp_path: Path, opened: list[ImageIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = populate(tmp_path, 20)
    index = open_index(opened, tmp_path)
    assert listed(index) == newest_first(records)
    files = DiskFiles(tmp_path)  # another writer, which knows nothing of the index
    added = [files.save(png(), output_format="png", width=2, height=2, metadata={"prompt": "x"}) for _ in range(3)]
    for gone in records[:2]:
        (tmp_path / f"{gone.image_id}.json").unlink()
        (tmp_path / gone.file_name).unlink()
    loaded: list[Path] = []

    def counting_load(root: Path, meta_path: Path) -> ImageRecord | None:
        loaded.append(meta_path)
        return load_sidecar(root, meta_path)

    monkeypatch.setattr("mcp_server.images.indexscan.load_sidecar", counting_load)
    index.sync()
    assert sorted(p.stem for p in loaded) == sorted(r.image_id for r in added)  # only the new sidecars were read
    assert listed(index) == newest_first(records[2:] + added)
    assert index.get(records[0].image_id) is None


def test_sync_is_one_stat_when_the_directory_has_not_changed(
    tmp_path: Path, opened: list[ImageIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = populate(tmp_path, 10)
    index = open_index(opened, tmp_path)
    age(tmp_path)
    index.sync()  # the directory changed (its mtime did): compared with the rows, and recorded as matching
    assert recorded(tmp_path) == os.stat(tmp_path).st_mtime_ns

    def no_scan(path: Any) -> Any:
        raise AssertionError("scanned a directory that had not changed")

    monkeypatch.setattr(os, "scandir", no_scan)
    index.sync()
    assert listed(index) == newest_first(records)
    assert listed(open_index(opened, tmp_path)) == newest_first(records)  # another process trusts the record


def test_a_scan_right_after_a_change_is_not_trusted_to_be_complete(tmp_path: Path, opened: list[ImageIndex]) -> None:
    populate(tmp_path, 3)
    index = open_index(opened, tmp_path)
    stored(tmp_path)
    index.sync()
    mtime = os.stat(tmp_path).st_mtime_ns
    if settled(mtime, time.time_ns()):
        pytest.skip("this machine took longer than the settling time between the write and the scan")
    # Within the same tick of the file system's clock, another change could leave the mtime as it is: scan again.
    assert recorded(tmp_path) != mtime
    assert settled(10**18 + 1, 10**18 + 200_000_000) and not settled(10**18 + 1, 10**18 + 50_000_000)
    assert not settled(10**18, 10**18 + 1_500_000_000)  # whole-second mtimes: a coarse file system


def test_two_indexes_on_one_directory_see_each_others_images(tmp_path: Path, opened: list[ImageIndex]) -> None:
    populate(tmp_path, 5)
    first, second = open_index(opened, tmp_path), open_index(opened, tmp_path)
    files = DiskFiles(tmp_path)
    record = files.save(png(), output_format="webp", width=2, height=2, metadata={})
    first.add(record)
    assert second.get(record.image_id) == record
    assert listed(second)[0] == record.image_id == listed(first)[0]


def test_threads_list_and_add_at_once(tmp_path: Path, opened: list[ImageIndex]) -> None:
    originals = {r.image_id for r in populate(tmp_path, 120)}
    index = open_index(opened, tmp_path)
    failures: list[str] = []

    def lister() -> None:
        for _ in range(5):
            ids = listed(index)
            if len(ids) != len(set(ids)) or ids != sorted(ids, reverse=True) or not originals <= set(ids):
                failures.append("a listing skipped, repeated or misordered images")

    def adder() -> None:
        for _ in range(30):
            index.add(stored(tmp_path))

    threads = [threading.Thread(target=lister) for _ in range(3)] + [threading.Thread(target=adder)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(listed(index)) == 150


def _open_index_files(root: Path) -> int:
    """How many files this process holds open on the index of `root` (the file itself, not its WAL)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to count open files")
    target = str(root / INDEX_NAME)
    found = 0
    for fd in fds.iterdir():
        try:
            found += os.readlink(fd) == target
        except OSError:
            continue
    return found


def test_connections_do_not_pile_up_as_threads_come_and_go(tmp_path: Path, opened: list[ImageIndex]) -> None:
    populate(tmp_path, 10)
    index = open_index(opened, tmp_path)
    for _ in range(3):
        workers = [threading.Thread(target=lambda: listed(index)) for _ in range(12)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert 1 <= _open_index_files(tmp_path) <= MAX_IDLE
    index.close()
    assert _open_index_files(tmp_path) == 0
    with pytest.raises(RuntimeError):
        index.page(None, 10)


CHILD = """
import sys
from pathlib import Path
from mcp_server.images.index import ImageIndex
from mcp_server.images.store import DiskFiles, load_sidecar

root = Path(sys.argv[1])
files, index = DiskFiles(root), ImageIndex(root)
for line in sys.stdin:
    for _ in range(int(line)):
        index.add(files.save(b"not decoded", output_format="png", width=1, height=1, metadata={}))
    print("done", flush=True)
index.close()
"""


def test_another_process_writes_while_this_one_lists(tmp_path: Path, opened: list[ImageIndex]) -> None:
    originals = {r.image_id for r in populate(tmp_path, 250)}
    index = open_index(opened, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    ) as child:
        assert child.stdin is not None and child.stdout is not None

        def write(count: int) -> None:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(f"{count}\n")
            child.stdin.flush()

        # Turn by turn: the other process stores images between this one's pages.
        records, cursor = index.page(None, 100)
        seen = [r.image_id for r in records]
        turns = 0
        while cursor is not None:
            write(5)
            turns += 1
            assert child.stdout.readline() == "done\n"
            records, cursor = index.page(cursor, 100)
            seen += [r.image_id for r in records]
        assert len(seen) == len(set(seen)) and originals <= set(seen)
        # At once: whole listings while the other process stores 40 images.
        write(40)
        listings = 0
        while listings < 3 or not _ready(child.stdout):  # until it says done (or dies)
            ids = listed(index)
            assert len(ids) == len(set(ids)) and ids == sorted(ids, reverse=True) and originals <= set(ids)
            listings += 1
        assert child.stdout.readline() == "done\n"
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    assert listed(index) == [r.image_id for r in DiskFiles(tmp_path).records()]
    assert len(listed(index)) == 250 + turns * 5 + 40 and turns >= 2


def _ready(stream: Any) -> bool:
    return bool(select.select([stream], [], [], 0)[0])


def test_each_directory_has_its_own_index(tmp_path: Path, opened: list[ImageIndex]) -> None:
    mine, theirs = populate(tmp_path / "a", 3), populate(tmp_path / "b", 4)
    a, b = open_index(opened, tmp_path / "a"), open_index(opened, tmp_path / "b")
    assert listed(a) == newest_first(mine) and listed(b) == newest_first(theirs)
    assert a.get(theirs[0].image_id) is None and b.get(mine[0].image_id) is None
    a.add(stored(tmp_path / "a"))
    assert listed(b) == newest_first(theirs)


@pytest.mark.parametrize(
    "image_id",
    ["../x", "img-../../etc", "", "img-20260101-000000-deadbeef/../x", "img-20260101-000000-deadbeef\n", "img-*"],
)
def test_lookup_of_hostile_ids_finds_nothing(tmp_path: Path, opened: list[ImageIndex], image_id: str) -> None:
    populate(tmp_path, 2)
    assert open_index(opened, tmp_path).get(image_id) is None


def test_lookup_finds_stored_images_and_nothing_else(tmp_path: Path, opened: list[ImageIndex]) -> None:
    records = populate(tmp_path, 5)
    index = open_index(opened, tmp_path)
    assert index.get(records[2].image_id) == records[2]
    assert index.get(new_image_id(BASE)) is None
    late = stored(tmp_path)  # written behind its back, not synced yet: found on disk, and indexed
    assert index.get(late.image_id) == late
    (tmp_path / records[3].file_name).unlink()  # image gone, sidecar left: not an image any more
    assert index.get(records[3].image_id) is None
    (tmp_path / records[4].file_name).unlink()
    assert records[4].image_id not in listed(index)


def test_sidecars_that_do_not_describe_their_image_are_not_indexed(tmp_path: Path, opened: list[ImageIndex]) -> None:
    good = populate(tmp_path, 2)
    tampered = stored(tmp_path, BASE + timedelta(days=1))
    meta = tmp_path / f"{tampered.image_id}.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {"file_name": "../../etc/passwd"}))
    renamed = stored(tmp_path, BASE + timedelta(days=2))
    other_id = new_image_id(BASE + timedelta(days=3))
    (tmp_path / f"{renamed.image_id}.json").rename(tmp_path / f"{other_id}.json")
    (tmp_path / "img-20200105-000000-0000000a.json").write_text("{not json")
    (tmp_path / "img-20200106-000000-0000000b.json").write_text("{}")
    index = open_index(opened, tmp_path)
    assert listed(index) == newest_first(good)
    assert index.get(tampered.image_id) is None and index.get(other_id) is None


def test_an_index_that_cannot_live_in_the_directory_is_kept_elsewhere(tmp_path: Path, opened: list[ImageIndex]) -> None:
    records = populate(tmp_path, 4)
    (tmp_path / INDEX_NAME).mkdir()  # SQLite cannot open this path, and it cannot be replaced
    index = open_index(opened, tmp_path)
    assert listed(index) == newest_first(records)
    added = stored(tmp_path)
    index.add(added)
    assert index.get(added.image_id) == added and listed(index)[0] == added.image_id
