"""How the Azure Blob Storage store names its blobs, and the cursors and metadata it hands out (no I/O).

Per principal prefix (`shared` on stdio, `p-<hash>` over HTTP), in one container:

```
<prefix>/records/<order>_<image_id>.json    the ImageRecord (JSON); written last: it makes the image visible
<prefix>/images/<order>_<image_id>.<ext>    the exact bytes, Content-Type the record's MIME type; written first
<prefix>/inflight/<key>.json                an InFlightRecord, leased by the replica that owns it
<prefix>/inflight-abandoned/<key>.json      a record given up on, kept for a person to look at
```

`<order>` is the image id with every digit inverted (decimal 9-d, hex f-h): `img-20261128-082210-0c573f2e`
becomes `79738871-917789-f3a8c0d1`. The service lists names in lexicographic order, so a listing of
`<prefix>/records/` is newest first (the order of image ids, descending, as the local store lists), and
`get(image_id)` computes the name without listing. The record blob also carries the record, compressed,
in its metadata when it fits, so that a page of 100 is one List Blobs call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from typing import Final

from pydantic import ValidationError

from mcp_server.images.records import EXTENSIONS, IMAGE_ID_PATTERN, KEY_PATTERN, ImageRecord

PREFIX_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
"""A principal prefix: `shared`, or `p-<hash>` as `images.stores.principal_dir_name` makes them."""
RECORDS: Final = "records"
IMAGES: Final = "images"
INFLIGHT: Final = "inflight"
ABANDONED: Final = "inflight-abandoned"
RECORD_METADATA: Final = "record"
METADATA_BUDGET: Final = 7000
"""The most characters the compressed record may take in metadata (the service allows 8 KiB in all)."""
CURSOR_VERSION: Final = "b1"
_HEX_INVERT: Final = str.maketrans("0123456789abcdef", "fedcba9876543210")
_DIGITS_INVERT: Final = str.maketrans("0123456789", "9876543210")
_NAME: Final = re.compile(r"/(\d{8}-\d{6}-[0-9a-f]{8})_(img-\d{8}-\d{6}-[0-9a-f]{8})\.json$")


def check_prefix(prefix: str) -> str:
    if not PREFIX_PATTERN.match(prefix):
        raise ValueError(f"not a store prefix: {prefix!r}")
    return prefix


def order_of(image_id: str) -> str:
    """The inverted image id: ascending order of these is descending order of the ids."""
    if not IMAGE_ID_PATTERN.match(image_id):
        raise ValueError(f"not an image id: {image_id!r}")
    date, time, suffix = image_id.removeprefix("img-").split("-")
    return f"{date.translate(_DIGITS_INVERT)}-{time.translate(_DIGITS_INVERT)}-{suffix.translate(_HEX_INVERT)}"


def record_name(prefix: str, image_id: str) -> str:
    return f"{prefix}/{RECORDS}/{order_of(image_id)}_{image_id}.json"


def bytes_name(prefix: str, record: ImageRecord) -> str:
    return f"{prefix}/{IMAGES}/{order_of(record.image_id)}_{record.file_name}"


def records_folder(prefix: str) -> str:
    return f"{prefix}/{RECORDS}/"


def image_id_of(name: str) -> str | None:
    """The image id a listed record blob is named after, or None for a name this store did not make."""
    match = _NAME.search(name)
    if match is None or order_of(match.group(2)) != match.group(1):
        return None
    return match.group(2)


def inflight_name(prefix: str, key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ValueError(f"unexpected in-flight key {key!r}")
    return f"{prefix}/{INFLIGHT}/{key}.json"


def inflight_folder(prefix: str) -> str:
    return f"{prefix}/{INFLIGHT}/"


def abandoned_name(prefix: str, key: str) -> str:
    return f"{prefix}/{ABANDONED}/{key}.json"


def key_of(name: str) -> str | None:
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    return stem if name.endswith(".json") and KEY_PATTERN.match(stem) else None


def valid_record(record: ImageRecord) -> bool:
    """Whether `record` names its file as the store does (`<image_id>.<ext of its format>`)."""
    extension = EXTENSIONS.get(record.output_format)
    return bool(IMAGE_ID_PATTERN.match(record.image_id)) and record.file_name == f"{record.image_id}.{extension}"


def parse_record(data: bytes | str, image_id: str) -> ImageRecord | None:
    """The record stored for `image_id`, or None when the text is not one."""
    try:
        record = ImageRecord.model_validate_json(data)
    except (ValidationError, ValueError):
        return None
    return record if record.image_id == image_id and valid_record(record) else None


def record_metadata(record_json: bytes) -> dict[str, str]:
    """The record, compressed, as blob metadata (base64: metadata travels in HTTP headers), when it fits."""
    packed = base64.b64encode(zlib.compress(record_json, 9)).decode("ascii")
    return {RECORD_METADATA: packed} if len(packed) <= METADATA_BUDGET else {}


def record_from_metadata(metadata: dict[str, str] | None, image_id: str) -> ImageRecord | None:
    packed = (metadata or {}).get(RECORD_METADATA)
    if not packed:
        return None
    try:
        data = zlib.decompress(base64.b64decode(packed, validate=True))
    except (binascii.Error, zlib.error, ValueError):
        return None
    return parse_record(data, image_id)


def scope_of(store_key: str) -> str:
    """A short digest of the store a cursor belongs to, so that another store's cursor is refused."""
    return hashlib.sha256(store_key.encode()).hexdigest()[:16]


def encode_cursor(marker: str, scope: str) -> str:
    body = json.dumps({"s": scope, "m": marker}, separators=(",", ":")).encode()
    return f"{CURSOR_VERSION}.{base64.urlsafe_b64encode(body).decode('ascii').rstrip('=')}"


def decode_cursor(cursor: str, scope: str) -> str:
    """The service's continuation token inside `cursor`; ValueError for a cursor this store did not make."""
    version, _, payload = cursor.partition(".")
    try:
        if version != CURSOR_VERSION:
            raise ValueError("unknown version")
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        marker = body["m"] if isinstance(body, dict) and body.get("s") == scope else None
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise ValueError("not a cursor of this image store") from exc
    if not isinstance(marker, str) or not marker:
        raise ValueError("not a cursor of this image store")
    return marker
