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


@pytest.fixture(scope='session')
def crossmoda_by_hand():
    """``scores.py`` of CrossMoDA/CrossMoDA2022-Evaluation-code recomputed from two NIfTI files: a function
    ``(pred_file, label_file, classes) -> {class: (dice, assd)}``. Dice by hand (NaN when both masks are
    empty, as medpy's ``dc``), ASSD with medpy's ``assd`` and ``voxelspacing`` = |diagonal of the label's
    affine|, 350 mm when the prediction (or, undefined in scores.py, the label) of a structure is empty.
    Both files are checked to share shape and affine. Skips without medpy (a test extra)."""
    import nibabel as nib
    import numpy as np

    binary = pytest.importorskip('medpy.metric.binary')

    def score(pred_file: Path, label_file: Path, classes=(1, 2)) -> dict:
        label, pred = nib.load(str(label_file)), nib.load(str(pred_file))
        assert pred.shape == label.shape and np.allclose(pred.affine, label.affine, atol=1e-4)
        truth, guess = np.rint(np.asanyarray(label.dataobj)), np.asanyarray(pred.dataobj)
        spacing = [abs(float(label.affine[k, k])) for k in range(3)]
        out = {}
        for c in classes:
            g, p = truth == c, guess == c
            total = int(g.sum() + p.sum())
            dice = 2.0 * int((g & p).sum()) / total if total else float('nan')
            assd = float(binary.assd(p, g, voxelspacing=spacing)) if g.any() and p.any() else 350.0
            out[c] = (dice, assd)
        return out

    return score
