"""Shared fixtures: the real sample files beside the project (skipped cleanly when absent) and the reference
libraries the scoring is checked against (required on CI)."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REALDATA = REPO.parent / 'shared' / 'realdata'


#: The reference libraries: the test extra that provides each top-level module.
REFERENCE_EXTRAS = {'medpy': 'medpy==0.5.2', 'monai': 'monai==1.6.1', 'surface_distance': 'surface-distance==0.1',
                    'nnunetv2': 'nnunetv2==2.8.1'}
#: Where a reference library's pin lives when not in requirements/tests.txt, and how it is installed.
REFERENCE_FILES = {'nnunetv2': 'requirements/nnunet.txt, installed with --no-deps by make install'}


def references_required() -> bool:
    """On CI (``CI`` set and not ``0``/``false``, as for the browser tests) or with ``REQUIRE_REFERENCES=1``
    (``.ci/run`` sets it) a missing reference library fails the tests that need it instead of skipping them."""
    def flag(name: str) -> bool:
        return os.environ.get(name, '').strip().lower() not in ('', '0', 'false', 'no')
    return flag('CI') or flag('REQUIRE_REFERENCES')


def require_reference(module: str) -> ModuleType:
    """``pytest.importorskip`` for the libraries a protocol is checked against (medpy, MONAI,
    surface-distance, nnunetv2): the module, or a skip naming the test extra; a failure when :func:`references_required`."""
    top = module.split('.')[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = (f'reference library {module} is not installed ({exc}); it is a test extra: '
               f'pip install {REFERENCE_EXTRAS.get(top, top)} '
               f'({REFERENCE_FILES.get(top, "requirements/tests.txt")})')
        if references_required():
            pytest.fail(why + ' -- required on CI (REQUIRE_REFERENCES / CI)', pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope='session')
def reference():
    """:func:`require_reference` for tests: ``medpy = reference('medpy.metric.binary')``."""
    return require_reference


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


@pytest.fixture(scope='session')
def crossmoda_by_hand():
    """``scores.py`` of CrossMoDA/CrossMoDA2022-Evaluation-code recomputed from two NIfTI files: a function
    ``(pred_file, label_file, classes) -> {class: (dice, assd)}``. Dice by hand (1 when both masks are
    empty, as medpy's ``dc`` with the NumPy < 2.3 the challenge ran with), ASSD with medpy's ``assd`` and ``voxelspacing`` = |diagonal of the label's
    affine|, 350 mm when the prediction (or, undefined in scores.py, the label) of a structure is empty.
    Both files are checked to share shape and affine. Needs medpy (:func:`require_reference`)."""
    import nibabel as nib
    import numpy as np

    binary = require_reference('medpy.metric.binary')

    def score(pred_file: Path, label_file: Path, classes=(1, 2)) -> dict:
        label, pred = nib.load(str(label_file)), nib.load(str(pred_file))
        assert pred.shape == label.shape and np.allclose(pred.affine, label.affine, atol=1e-4)
        truth, guess = np.rint(np.asanyarray(label.dataobj)), np.asanyarray(pred.dataobj)
        spacing = [abs(float(label.affine[k, k])) for k in range(3)]
        out = {}
        for c in classes:
            g, p = truth == c, guess == c
            total = int(g.sum() + p.sum())
            dice = 2.0 * int((g & p).sum()) / total if total else 1.0
            assd = float(binary.assd(p, g, voxelspacing=spacing)) if g.any() and p.any() else 350.0
            out[c] = (dice, assd)
        return out

    return score
