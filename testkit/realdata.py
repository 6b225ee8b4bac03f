"""Where the real Sentinel-2 test material lies (real ESA SAFE metadata and JP2s, real STAC
items, real L2A patches, a real labelled season; provenance and licences in its README).

It is found at ``$CROPAI_REALDATA`` or ``../shared/realdata`` beside the project's root;
tests that need it skip, saying so, when it is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VARIABLE = "CROPAI_REALDATA"


def realdata_root() -> Path | None:
    """The real material's folder, or None when this machine does not have it."""
    configured = os.environ.get(VARIABLE)
    root = Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "realdata"
    return root if (root / "README.md").is_file() else None


def realdata(*parts: str) -> Path:
    """A path inside the real material; skips the calling test when the material is missing."""
    root = realdata_root()
    if root is None:
        import pytest

        pytest.skip(f"real Sentinel-2 material not found (set {VARIABLE} or place it at ../shared/realdata)")
    path = root.joinpath(*parts)
    assert path.exists(), f"{path} is missing from the real material"
    return path


SAFE_FOLDER = ("safe", "stactools-sentinel2")
SAFE_0400 = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE"
SAFE_0509 = "S2A_MSIL2A_20230821T221941_N0509_R029_T01KAB_20230822T021825.SAFE"
SAFE_0214 = "esa_S2B_MSIL2A_20210122T133229_N0214_R081_T22HBD_20210122T155500.SAFE"
SAFE_0212 = "S2A_MSIL2A_20190212T192651_N0212_R013_T07HFE_20201007T160857.SAFE"
SAFE_L1C = "S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE"
