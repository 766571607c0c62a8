"""A small prepared Cranium dataset shared by the tool tests (mim train/test, distributed, benchmark)."""
from pathlib import Path

import pytest

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.synthetic import write_cranium_release


@pytest.fixture(scope='session')
def cranium_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('cranium')
    write_cranium_release(root / 'raw', num_patients=6, num_slices=6, size=64, seed=0, layouts=('nifti',))
    prepare(CONVERTERS['cranium'](), root / 'raw', root / 'data', workers=2, previews=0)
    return root / 'data'
