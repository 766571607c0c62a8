"""Shared fixtures: the real sample files beside the project (skipped cleanly when absent)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REALDATA = REPO.parent / 'shared' / 'realdata'


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope='session')
def realdata() -> Path:
    """``../shared/realdata`` (real files in their original formats); skip when it is not there."""
    if not SHARED_REALDATA.is_dir():
        pytest.skip('../shared/realdata is not present (real sample files are optional)')
    return SHARED_REALDATA


@pytest.fixture(scope='session')
def cranium_data(tmp_path_factory) -> Path:
    """A small prepared synthetic Cranium dataset (6 patients × 6 slices × 64², NIfTI layout)."""
    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.synthetic import write_cranium_release

    root = tmp_path_factory.mktemp('cranium')
    write_cranium_release(root / 'raw', num_patients=6, num_slices=6, size=64, seed=0, layouts=('nifti',))
    prepare(CONVERTERS['cranium'](), root / 'raw', root / 'data', workers=2, previews=0)
    return root / 'data'
