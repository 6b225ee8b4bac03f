"""The viewer's files as the API serves them: the vendored map library is the one web/
pins, no page or script loads anything from outside the API's own origin, and the
confidence legend shows the colours the API paints its tiles in."""

import json
import re
from pathlib import Path

from cropai.webtiles import CONFIDENCE_RAMP

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "api" / "web"


def test_the_vendored_leaflet_is_the_version_the_lockfile_pins() -> None:
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    pinned = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]["leaflet"]
    vendored = (WEB / "vendor" / "leaflet" / "VERSION").read_text().strip()
    assert vendored == pinned == lock["packages"]["node_modules/leaflet"]["version"]
    assert f"Leaflet {vendored}" in (WEB / "vendor" / "leaflet" / "leaflet.js").read_text()[:400]


def test_the_pages_load_only_files_the_api_serves() -> None:
    page = (WEB / "index.html").read_text()
    references = re.findall(r'(?:src|href)="([^"#]+)"', page)
    local = [r for r in references if not r.startswith("/")]  # "/docs": the API's own pages
    assert not [r for r in local if "://" in r or r.startswith("//")]
    assert [r for r in local if not (WEB / r).is_file()] == []


def test_scripts_import_only_their_neighbours() -> None:
    for script in (WEB / "js").glob("*.js"):
        for target in re.findall(r'from\s+"([^"]+)"', script.read_text()):
            assert target.startswith("./") and (script.parent / target).is_file(), (script.name, target)


def test_the_confidence_legend_shows_the_colours_the_tiles_are_painted_in() -> None:
    script = (WEB / "js" / "map.js").read_text()
    steps = re.findall(r'\{ lower: (\d+), upper: (\d+), colour: "(#[0-9a-f]{6})" \}', script)
    assert [(int(lo), int(hi), colour) for lo, hi, colour in steps] == [
        (s.lower_percent, s.upper_percent, s.colour) for s in CONFIDENCE_RAMP
    ]
