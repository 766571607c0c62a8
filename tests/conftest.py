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
