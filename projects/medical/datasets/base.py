"""Base class for datasets written by ``tools/prepare_dataset.py``."""
from mmseg.datasets import BaseSegDataset


class MedicalSliceDataset(BaseSegDataset):
    """8-bit PNG slices in ``images/<split>/`` and uint8 class-index PNG masks in ``masks/<split>/``.

    File names are ``<case_id>_<slice:04d>.png``; ``manifest.csv`` at the dataset root maps them back to
    cases (see :class:`mmseg_medical.evaluation.VolumeMetric`). Masks hold class indices starting at 0
    (background), so ``reduce_zero_label`` is False.
    """

    def __init__(self, img_suffix: str = '.png', seg_map_suffix: str = '.png', reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)
