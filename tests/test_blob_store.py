"""The Azure Blob Storage image store (`images/blob*.py`) against Azurite: the `ImageStore`, `InFlightStore` and
`Claim` protocols as the local store keeps them, across two backends standing for two replicas.

Each test has a container of its own in the session's Azurite (see tests/azurite.py; skipped without it unless
FOUNDRY_IMAGE_MCP_REQUIRE_AZURITE=1). No test waits for a lease to run out: a dead owner's lease is broken,
and renewals run on a clock the test advances.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient
from azurite import ACCOUNT, ACCOUNT_KEY, AZURITE_VERSION, ROOT, Azurite

from mcp_server.config import BLOB_CONNECTION_VAR, BLOB_CONTAINER_VAR, BLOB_URL_VAR, STORE_VAR, Settings
from mcp_server.errors import ConfigurationError
from mcp_server.images.base import ImageStore, StoreWriteError
from mcp_server.images.blob import BlobBackend, open_backend
from mcp_server.images.blob_errors import BlobStoreError
from mcp_server.images.blob_names import abandoned_name, bytes_name, inflight_name, record_name
from mcp_server.images.blob_timing import LeaseTiming
from mcp_server.images.records import ImageRecord, InFlightRecord, new_image_id, new_inflight_record, new_record

pytestmark = pytest.mark.anyio

ENDPOINT = "https://res.services.ai.azure.com/api/projects/proj"
QUICK = LeaseTiming(seconds=15, renew_every=5)
"""Real time: no test here lives long enough to renew."""


class ManualClock:
    """The renewal task's `sleep` and `clock`: it sleeps until the test advances the time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    def timing(self) -> LeaseTiming:
        return LeaseTiming(seconds=15, renew_every=5, sleep=self.sleep, clock=lambda: self.now)

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.Event()
        await self._sleepers.put(woken)
        await woken.wait()

    async def advance(self, seconds: float, ended: Callable[[], bool] = lambda: False) -> None:
        """Move the time on and wake the renewal task; return once it is asleep again (or `ended()`)."""
        sleeper = await asyncio.wait_for(self._sleepers.get(), 5)
        self.now += seconds
        sleeper.set()
        for _ in range(500):
            if not self._sleepers.empty() or ended():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the renewal task neither slept again nor ended")


def settings_for(azurite: Azurite, container: str, connection: str | None = None) -> Settings:
    return Settings.load(
        {
            "AZURE_AI_PROJECT_ENDPOINT": ENDPOINT,
            "HOME": "/tmp",
            STORE_VAR: "azure-blob",
            BLOB_CONNECTION_VAR: connection or azurite.connection_string(),
            BLOB_CONTAINER_VAR: container,
        }
    )


@asynccontextmanager
async def replica(
    azurite: Azurite, container: str, *, timing: LeaseTiming = QUICK, connection: str | None = None
) -> AsyncIterator[BlobBackend]:
    """One process's backend, as the server's wiring opens it."""
    backend = open_backend(settings_for(azurite, container, connection), timing=timing, retries=0)
    try:
        yield backend
    finally:
        await backend.aclose()


@asynccontextmanager
async def raw(azurite: Azurite) -> AsyncIterator[BlobServiceClient]:
    """A plain client, to look at (and tamper with) the container from outside the store."""
    async with BlobServiceClient.from_connection_string(azurite.connection_string()) as service:
        yield service


def container_name() -> str:
    return f"t-{secrets.token_hex(6)}"


def image(at: datetime | None = None, *, prompt: str = "a red kite", size: int = 3000) -> tuple[ImageRecord, bytes]:
    data = os.urandom(size)
    record = new_record(
        data, output_format="png", width=64, height=64, metadata={"prompt": prompt}, image_id=new_image_id(at)
    )
    return record, data


def inflight(tag: str | None = None) -> InFlightRecord:
    return new_inflight_record(
        tag=tag or secrets.token_hex(16), image_id=new_image_id(), agent_name="agent", provenance={"prompt": "p"}
    )


# ---------------------------------------------------------------- images


async def test_an_image_is_stored_as_its_exact_bytes_and_found_by_its_id(azurite: Azurite) -> None:
    container = container_name()
    async with replica(azurite, container) as backend, raw(azurite) as service:
        store: ImageStore = backend.store_for("shared")
        record, data = image()
        assert await store.put(record, data) == record
        assert await store.get(record.image_id) == record
        assert await store.read(record) == data
        assert store.path_of(record) is None
        await store.check_room(10**12)
        assert store.label == f"{azurite.blob_endpoint}/{container}/shared"
        assert store.key != backend.store_for("p-0123").key
        blobs = service.get_container_client(container)
        props = await blobs.get_blob_client(bytes_name("shared", record)).get_blob_properties()
        assert props.content_settings.content_type == "image/png" and props.size == len(data)
        assert await store.get("img-20990101-000000-00000000") is None
        assert await store.get("../../etc/passwd") is None


async def test_storing_twice_returns_the_first_image_and_a_half_written_one_is_completed(azurite: Azurite) -> None:
    container = container_name()
    async with replica(azurite, container) as backend, raw(azurite) as service:
        store = backend.store_for("shared")
        record, data = image()
        await store.put(record, data)
        again = record.model_copy(update={"prompt": "something else"})
        assert await store.put(again, os.urandom(10)) == record
        assert await store.read(record) == data, "the bytes stored first stay"
        (page,) = [(await store.page()).records]
        assert page == [record]
        # A crash between the bytes and the record: not listed, and storing again completes it.
        cut, cut_data = image()
        blob = service.get_container_client(container).get_blob_client(bytes_name("shared", cut))
        await blob.upload_blob(b"partial")
        assert await store.get(cut.image_id) is None and (await store.page()).records == [record]
        assert await store.put(cut, cut_data) == cut
        assert await store.read(cut) == cut_data


async def test_pages_are_newest_first_and_a_cursor_survives_new_images(azurite: Azurite) -> None:
    async with replica(azurite, container_name()) as backend:
        store = backend.store_for("shared")
        start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
        stored = [image(start + timedelta(seconds=n))[0] for n in range(7)]
        stored.append(image(start + timedelta(seconds=3))[0])  # two in the same second
        for record in stored:
            await store.put(record, b"x" * record.bytes)
        newest_first = sorted(stored, key=lambda r: r.image_id, reverse=True)
        first = await store.page(limit=3)
        assert first.records == newest_first[:3] and first.next_cursor is not None
        for n in range(3):  # images arriving while the listing is read sort before the cursor
            record, data = image(start + timedelta(minutes=5, seconds=n))
            await store.put(record, data)
        seen = list(first.records)
        cursor = first.next_cursor
        while cursor is not None:
            page = await store.page(cursor, limit=3)
            seen += page.records
            cursor = page.next_cursor
        assert seen == newest_first, "nothing repeated, nothing skipped"
        assert len((await store.page()).records) == 11


async def test_a_cursor_from_elsewhere_is_refused(azurite: Azurite) -> None:
    async with replica(azurite, container_name()) as backend:
        alice, bob = backend.store_for("p-alice"), backend.store_for("p-bob")
        for _ in range(3):
            await alice.put(*image())
        cursor = (await alice.page(limit=1)).next_cursor
        assert cursor is not None and len((await alice.page(cursor, limit=5)).records) == 2
        for foreign in (cursor.replace("b1.", "b2."), "garbage", "b1.e30", "", cursor + "x"):
            with pytest.raises(ValueError):
                await alice.page(foreign)
        with pytest.raises(ValueError):
            await bob.page(cursor)


async def test_each_principal_sees_only_its_own_images(azurite: Azurite) -> None:
    async with replica(azurite, container_name()) as backend:
        alice, bob = backend.store_for("p-alice"), backend.store_for("p-bob")
        record, data = image()
        await alice.put(record, data)
        assert await bob.get(record.image_id) is None
        assert (await bob.page()).records == []
        assert [r.image_id for r in (await alice.page()).records] == [record.image_id]
        with pytest.raises(ValueError):
            backend.store_for("../p-alice")


async def test_a_record_too_large_for_metadata_is_read_from_its_blob(azurite: Azurite) -> None:
    async with replica(azurite, container_name()) as backend:
        store = backend.store_for("shared")
        record, data = image(prompt=secrets.token_urlsafe(24000))  # incompressible: no room in the metadata
        small, small_data = image()
        await store.put(record, data)
        await store.put(small, small_data)
        assert {r.image_id: r for r in (await store.page()).records} == {record.image_id: record, small.image_id: small}


async def test_a_missing_container_is_created_at_the_first_write_and_empty_before(azurite: Azurite) -> None:
    async with replica(azurite, container_name()) as backend:
        store = backend.store_for("shared")
        assert (await store.page()).records == [] and await store.inflight.records() == []
        assert await store.inflight.orphans() == []
        record, data = image()
        await store.put(record, data)
        assert await store.get(record.image_id) == record


# ---------------------------------------------------------------- in-flight records


async def test_a_begun_record_is_owned_by_its_replica_alone_until_released(azurite: Azurite) -> None:
    container = container_name()
    async with replica(azurite, container) as one, replica(azurite, container) as two:
        mine, theirs = one.store_for("shared").inflight, two.store_for("shared").inflight
        claim = await mine.begin(inflight())
        assert claim.held
        assert await theirs.orphans() == [] and await mine.orphans() == []
        await claim.update(response_id="resp_1")
        (seen,) = await theirs.records()
        assert seen.response_id == "resp_1" and seen.key == claim.record.key
        await claim.release()
        assert not claim.held
        (taken,) = await theirs.orphans()
        assert taken.record.response_id == "resp_1" and await mine.orphans() == []
        await taken.finish()
        assert await theirs.records() == [] and await mine.orphans() == []


async def test_a_dead_owners_record_is_claimed_by_exactly_one_of_two_replicas(azurite: Azurite) -> None:
    container = container_name()
    frozen = ManualClock()  # the owner never renews: it stands for a process that died
    async with (
        replica(azurite, container, timing=frozen.timing()) as dead,
        replica(azurite, container) as one,
        replica(azurite, container) as two,
        raw(azurite) as service,
    ):
        claim = await dead.store_for("shared").inflight.begin(inflight())
        blob = service.get_container_client(container).get_blob_client(inflight_name("shared", claim.record.key))
        assert await one.store_for("shared").inflight.orphans() == []
        await BlobLeaseClient(blob).break_lease(lease_break_period=0)  # what its lease expiring does
        won = await asyncio.gather(*(r.store_for("shared").inflight.orphans() for r in (one, two)))
        assert sorted(len(claims) for claims in won) == [0, 1]
        (taken,) = won[0] or won[1]
        assert taken.record == claim.record
        await claim.update(response_id="too late")  # the old owner cannot write any more
        assert not claim.held
        (record,) = await one.store_for("shared").inflight.records()
        assert record.response_id is None
        await claim.finish()
        assert len(await two.store_for("shared").inflight.records()) == 1, "nor remove it"


async def test_renewals_keep_a_claim_past_its_lease_and_a_lost_lease_ends_it(azurite: Azurite) -> None:
    container = container_name()
    clock = ManualClock()
    async with (
        replica(azurite, container, timing=clock.timing()) as owner,
        replica(azurite, container) as other,
        raw(azurite) as service,
    ):
        claim = await owner.store_for("shared").inflight.begin(inflight())
        for _ in range(8):  # 40 s on the claim's clock, lease 15 s: alive because each renewal succeeds
            await clock.advance(5)
            assert claim.held
        assert await other.store_for("shared").inflight.orphans() == []
        blob = service.get_container_client(container).get_blob_client(inflight_name("shared", claim.record.key))
        await BlobLeaseClient(blob).break_lease(lease_break_period=0)
        await clock.advance(5, ended=lambda: not claim.held)  # the next renewal finds the lease gone
        assert not claim.held
        (taken,) = await other.store_for("shared").inflight.orphans()
        await taken.finish()


async def test_finish_removes_the_record_and_abandon_keeps_it_aside(azurite: Azurite) -> None:
    container = container_name()
    async with replica(azurite, container) as backend, raw(azurite) as service:
        flight = backend.store_for("shared").inflight
        done, given_up = await flight.begin(inflight()), await flight.begin(inflight())
        await given_up.update(attempts=3)
        await done.finish()
        await given_up.abandon()
        await given_up.finish()  # settled already: nothing more happens
        assert await flight.records() == [] and await flight.orphans() == []
        aside = service.get_container_client(container).get_blob_client(abandoned_name("shared", given_up.record.key))
        kept = InFlightRecord.model_validate_json(await (await aside.download_blob()).readall())
        assert kept.attempts == 3 and kept.key == given_up.record.key


async def test_closing_a_backend_releases_its_claims_to_the_other_replicas(azurite: Azurite) -> None:
    container = container_name()
    async with replica(azurite, container) as other:
        async with replica(azurite, container) as leaving:
            await leaving.store_for("shared").inflight.begin(inflight())
        (taken,) = await other.store_for("shared").inflight.orphans()
        await taken.finish()


# ---------------------------------------------------------------- refusals, and no secrets


async def test_a_container_this_identity_may_not_create_is_a_lasting_write_error(azurite: Azurite) -> None:
    sas = generate_account_sas(
        ACCOUNT,
        ACCOUNT_KEY,
        ResourceTypes(object=True),  # blobs only: no container operations
        AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        datetime.now(UTC) + timedelta(hours=1),
    )
    connection = f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"
    async with replica(azurite, container_name(), connection=connection) as backend:
        store = backend.store_for("shared")
        with pytest.raises(StoreWriteError) as caught:
            await store.put(*image())
        assert isinstance(caught.value, BlobStoreError) and caught.value.kind == "container"
        assert not caught.value.transient and "may not create it" in caught.value.reason
        assert "sig=" not in store.label and sas not in str(caught.value)


async def test_a_deleted_container_is_not_recreated_when_creating_is_not_allowed(azurite: Azurite) -> None:
    container = container_name()
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    backend = BlobBackend(service, container, create_container=False, timing=QUICK)
    try:
        with pytest.raises(StoreWriteError) as caught:
            await backend.store_for("shared").inflight.begin(inflight())
        assert not caught.value.transient and f"no container {container}" in caught.value.reason
    finally:
        await backend.aclose()


async def test_a_wrong_key_is_refused_without_showing_any_key(
    azurite: Azurite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "A" * 86 + "=="
    async with replica(azurite, container_name(), connection=azurite.connection_string(wrong)) as backend:
        store = backend.store_for("shared")
        with pytest.raises(StoreWriteError) as caught:
            await store.put(*image())
        assert isinstance(caught.value, BlobStoreError) and caught.value.kind == "credentials"
        assert not caught.value.transient and "403" in caught.value.reason
        with pytest.raises(PermissionError):
            await store.get(new_image_id())
        with pytest.raises(StoreWriteError):
            await store.inflight.begin(inflight())
    for shown in (str(caught.value), store.label, store.key, caplog.text):
        assert wrong not in shown and ACCOUNT_KEY not in shown


async def test_an_unreachable_account_is_a_passing_write_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dead = Azurite(port=1)  # nothing listens on port 1
    async with replica(dead, container_name()) as backend:
        with pytest.raises(StoreWriteError) as caught:
            await backend.store_for("shared").put(*image())
    assert caught.value.transient and "cannot reach the storage account" in caught.value.reason
    assert ACCOUNT_KEY not in str(caught.value) + caplog.text


async def test_nothing_logged_while_working_shows_the_account_key(
    azurite: Azurite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    container = container_name()
    async with replica(azurite, container) as backend:
        store = backend.store_for("shared")
        record, data = image()
        await store.put(record, data)
        await store.page()
        claim = await store.inflight.begin(inflight())
        await claim.abandon()
        assert ACCOUNT_KEY not in store.label + store.key + backend.url
    assert ACCOUNT_KEY not in caplog.text
    assert record_name("shared", record.image_id).startswith("shared/records/")


# ---------------------------------------------------------------- settings, the extra, and start-up cost

BASE = {"AZURE_AI_PROJECT_ENDPOINT": ENDPOINT, "HOME": "/tmp"}
CONNECTION = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleS0wMTIzNDU2Nzg5;"


def test_the_local_store_is_the_default_and_azure_blob_needs_exactly_one_way_in() -> None:
    settings = Settings.load(BASE)
    assert (settings.store, settings.blob_container, settings.blob_account_url) == ("local", "foundry-images", None)
    for given in ({}, {BLOB_URL_VAR: "https://acct.blob.core.windows.net", BLOB_CONNECTION_VAR: CONNECTION}):
        with pytest.raises(ConfigurationError) as caught:
            Settings.load({**BASE, STORE_VAR: "azure-blob", **given})
        assert BLOB_URL_VAR in caught.value.message and BLOB_CONNECTION_VAR in caught.value.message
        assert CONNECTION not in str(caught.value)
    by_url = Settings.load({**BASE, STORE_VAR: "azure-blob", BLOB_URL_VAR: "https://acct.blob.core.windows.net/"})
    assert by_url.blob_account_url == "https://acct.blob.core.windows.net"
    by_key = Settings.load({**BASE, STORE_VAR: "azure-blob", BLOB_CONNECTION_VAR: CONNECTION})
    assert by_key.blob_connection_string is not None and CONNECTION not in repr(by_key) + str(by_key.model_dump())


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (STORE_VAR, "s3", "store"),
        (BLOB_URL_VAR, "http://acct.blob.core.windows.net", "must use https"),
        (BLOB_URL_VAR, "https://acct.blob.core.windows.net/?sv=2024&sig=c2VjcmV0", "must not carry a query"),
        (BLOB_URL_VAR, "acct", "https://<account>.blob.core.windows.net"),
        (BLOB_CONTAINER_VAR, "Images", "blob_container"),
        (BLOB_CONTAINER_VAR, "a--b", "blob_container"),
        (BLOB_CONTAINER_VAR, "ab", "blob_container"),
    ],
)
def test_malformed_storage_settings_are_named(variable: str, value: str, problem: str) -> None:
    env = {**BASE, STORE_VAR: "azure-blob", BLOB_CONNECTION_VAR: CONNECTION, variable: value}
    if variable == BLOB_URL_VAR:
        del env[BLOB_CONNECTION_VAR]
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(env)
    assert problem in caught.value.message and "c2VjcmV0" not in caught.value.message


def test_a_missing_extra_is_a_configuration_error_naming_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "azure.storage.blob" else real(name, *a)
    )
    with pytest.raises(ConfigurationError) as caught:
        open_backend(Settings.load({**BASE, STORE_VAR: "azure-blob", BLOB_CONNECTION_VAR: CONNECTION}))
    assert "pip install 'foundry-image-mcp[azure-blob]'" in str(caught.value)


def test_a_malformed_connection_string_is_refused_without_repeating_it() -> None:
    settings = Settings.load({**BASE, STORE_VAR: "azure-blob", BLOB_CONNECTION_VAR: "AccountKey=c2VjcmV0;nonsense"})
    with pytest.raises(ConfigurationError) as caught:
        open_backend(settings)
    assert BLOB_CONNECTION_VAR in caught.value.message and "c2VjcmV0" not in str(caught.value)


def test_the_local_store_never_imports_the_storage_sdk() -> None:
    """Settings, the blob module itself and the doctor load without azure.storage (checked with -X importtime)."""
    code = "import mcp_server.config, mcp_server.images.blob, mcp_server.images.blob_timing"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "mcp_server.images.blob" in imported
    assert not [name for name in imported if name.startswith(("azure.storage", "aiohttp"))]


def test_the_ci_gate_installs_the_azurite_the_tests_pin_and_requires_it() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f'AZURITE_VERSION="{AZURITE_VERSION}"' in script
    assert "export FOUNDRY_IMAGE_MCP_REQUIRE_AZURITE=1" in script
    assert script.index("export FOUNDRY_IMAGE_MCP_REQUIRE_AZURITE=1") < script.index("\npython -m pytest -q\n")
    assert "node_modules/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
