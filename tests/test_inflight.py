"""In-flight records and their claims: exactly one live owner per record, taken over only from a dead one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_server.images.inflight import ABANDONED_DIR, PENDING_DIR, InFlight
from mcp_server.images.records import InFlightRecord, new_image_id
from mcp_server.images.records import new_inflight_record as new_record

CLAIM_FROM_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from mcp_server.images.inflight import InFlight
claims = InFlight(Path(sys.argv[1])).orphans()
print(len(claims))
"""


def record(tag: str = "tag0001") -> InFlightRecord:
    return new_record(tag=tag, image_id=new_image_id(), agent_name="agent", provenance={"prompt": "p"})


def claimable_elsewhere(root: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CLAIM_FROM_ANOTHER_PROCESS, str(root)], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_a_record_is_written_before_anything_else_and_owned_by_whoever_wrote_it(tmp_path: Path) -> None:
    claim = InFlight(tmp_path).begin(record())
    saved = json.loads((tmp_path / PENDING_DIR / "tag0001.json").read_text())
    assert saved["tag"] == "tag0001" and saved["image_id"] == claim.record.image_id and saved["response_id"] is None
    assert InFlight(tmp_path).orphans() == [], "another owner in this process cannot take it"
    assert claimable_elsewhere(tmp_path) == 0, "nor can another process"
    claim.update(response_id="resp_1")
    (again,) = InFlight(tmp_path).records()
    assert again.response_id == "resp_1"
    claim.release()
    assert claimable_elsewhere(tmp_path) == 1, "released (its owner gone): anyone may take it over"


def test_a_taken_over_record_is_exclusive_to_its_new_owner(tmp_path: Path) -> None:
    InFlight(tmp_path).begin(record()).release()
    (taken,) = InFlight(tmp_path).orphans()
    assert InFlight(tmp_path).orphans() == [] and claimable_elsewhere(tmp_path) == 0
    assert taken.record.provenance == {"prompt": "p"}
    taken.finish()
    assert list((tmp_path / PENDING_DIR).iterdir()) == [], "no record, no lock file"
    assert InFlight(tmp_path).orphans() == []


def test_an_owner_that_dies_frees_its_records(tmp_path: Path) -> None:
    script = (
        "import sys, os\nfrom pathlib import Path\nfrom mcp_server.images.inflight import InFlight\n"
        "from mcp_server.images.records import new_inflight_record as new_record\n"
        "InFlight(Path(sys.argv[1])).begin(new_record(tag='tagdead', image_id='img-20261128-000000-0000abcd', "
        "agent_name=None, provenance={}))\nos._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    (claim,) = InFlight(tmp_path).orphans()
    assert claim.record.key == "tagdead"


def test_abandoning_keeps_the_record_aside_for_a_person(tmp_path: Path) -> None:
    claim = InFlight(tmp_path).begin(record())
    claim.abandon()
    assert (tmp_path / PENDING_DIR / ABANDONED_DIR / "tag0001.json").is_file()
    assert InFlight(tmp_path).keys() == [] and not list((tmp_path / PENDING_DIR).glob("*.lock"))


def test_unreadable_and_hostile_records_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / PENDING_DIR
    folder.mkdir()
    (folder / "broken.json").write_text("{not json")
    (folder / "other.json").write_text(json.dumps({"key": "elsewhere", "tag": "x"}))
    (folder / "a..b.json").write_text("{}")
    assert InFlight(tmp_path).orphans() == [] and InFlight(tmp_path).records() == []
    assert (folder / "broken.json").exists(), "kept for a person to look at"
