"""``covid19``: the COVID-19-CT-Seg benchmark's ``utils/COVID-19-Seg-Evaluation.py``.

Per case and class: DSC by DeepMind's ``compute_dice_coefficient`` and NSD by
``compute_surface_dice_at_tolerance(compute_surface_distances(gt == c, seg == c, spacing), tolerance)``
with ``spacing = gt_nii.header.get_zooms()``, tolerance 1 mm for the left and right lung and 3 mm for the
lesion (infection). A class absent from both ground truth and prediction gives NaN there (0/0); one of the
two empty gives DSC = NSD = 0. Which label is which, when only files are given, follows the script: the
largest label of the first ground truth is 1 (lesion), 2 (left, right lung) or 3 (lungs + lesion).

The script writes one CSV row per case and nothing else. The aggregation is this project's choice, not the
script's: the mean and the sample std (``ddof=1``) over cases, NaN values left out of both (as pandas'
``mean``/``std`` would do on that CSV); the benchmark's READMEs do not say which std their tables use.

Departure: the script casts the ground truth with ``np.uint8(gt_nii.get_fdata())``, which truncates (0.9999
becomes 0). Here label files are read by :func:`mmseg_medical.evaluation.cli.load_labels`, which rounds a
float label within 1e-3 of a whole number and refuses one further off (one error naming the file). The two
agree on every whole-number label file (the benchmark's files are); they differ only on non-integral floats.
"""
from __future__ import annotations

from typing import Dict

from ..surface import BOTH_EMPTY
from .base import Protocol, register_protocol

SOURCE = ('JunMa11/COVID-19-CT-Seg-Benchmark: utils/COVID-19-Seg-Evaluation.py @ 2865f70 '
          '(DeepMind surface-distance as utils/SurfaceDice.py)')
#: NSD tolerance (mm) per class name, as the script's column names say (L-lung-1mm, LesionNSD-3mm).
TOLERANCES = {'left_lung': 1.0, 'right_lung': 1.0, 'infection': 3.0, 'lesion': 3.0}
#: The script's label meaning by the largest label of the first ground truth (``num_labels``).
NAMES_BY_MAX_LABEL = {1: {1: 'infection'}, 2: {1: 'left_lung', 2: 'right_lung'},
                      3: {1: 'left_lung', 2: 'right_lung', 3: 'infection'}}


class Covid19Protocol(Protocol):
    def empty_values(self, empty: str, diagonal: float) -> dict:
        """One mask empty: DSC = NSD = 0 (the default); both empty: NaN, as DeepMind's ``volume_sum == 0`` and
        its 0/0 surfel areas give. Non-empty pairs: the default DSC and NSD (DeepMind definitions)."""
        if empty == BOTH_EMPTY:
            return {'dice': float('nan'), 'nsd': float('nan'), 'empty': empty}
        return super().empty_values(empty, diagonal)

    def class_names(self, max_label: int) -> Dict[int, str]:
        return dict(NAMES_BY_MAX_LABEL.get(min(int(max_label), 3), {}))


COVID19 = register_protocol(Covid19Protocol(
    name='covid19',
    title="the COVID-19-CT-Seg benchmark's evaluation script: DSC and NSD (1 mm lungs, 3 mm lesion)",
    source=SOURCE,
    metrics=('dice', 'nsd'),
    empty_rule='both empty: NaN (the script); one empty: DSC = NSD = 0',
    aggregation_rule=('mean ± sample std (ddof 1) over cases, NaN left out (this project\'s choice: the script '
                      'writes per-case rows only); per fold, and pooled over (fold, case) for Avg rows'),
    tolerances_by_name=TOLERANCES,
    default_tolerance=None,
    omit_nan=True,
))
