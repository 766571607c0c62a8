"""COVID-19-CT-Seg slices (one class per subtask) and the datasets of every NIfTI-pair spec (MosMed,
MSD Task06 Lung, StructSeg lungs, and any spec added to :data:`mmseg_medical.conversion.nifti_pairs.SPECS`)."""
from typing import List, Optional

from mmseg.registry import DATASETS

from ..conversion.covid19 import DEFAULT_SUBTASK, subtask_classes
from ..conversion.nifti_pairs import SPECS
from .base import MedicalSliceDataset

_PALETTE = [[0, 0, 0], [0, 128, 255], [0, 200, 0], [255, 0, 0], [255, 255, 0], [255, 0, 255], [0, 255, 255]]


def palette(num_classes: int) -> List[List[int]]:
    return [list(c) for c in _PALETTE[:num_classes]]


@DATASETS.register_module()
class Covid19Dataset(MedicalSliceDataset):
    """Chest CT slices (lung window) of ``prepare_dataset.py covid19 --subtask <subtask>``.

    ``subtask`` must be the one the data was prepared with: ``lung_infection`` (background, left_lung,
    right_lung, infection), ``lung`` or ``infection``. The masks hold that subtask's class indices, so
    no mmseg class remapping happens.
    """

    METAINFO = dict(classes=subtask_classes(DEFAULT_SUBTASK), palette=palette(4))

    def __init__(self, subtask: str = DEFAULT_SUBTASK, metainfo: Optional[dict] = None, **kwargs) -> None:
        classes = subtask_classes(subtask)
        metainfo = {'classes': classes, 'palette': palette(len(classes)), **(metainfo or {})}
        super().__init__(metainfo=metainfo, **kwargs)

    @classmethod
    def get_label_map(cls, new_classes=None) -> None:
        """No remapping: the masks already hold the class indices of the prepared subtask."""
        return None


for _spec in SPECS.values():
    DATASETS.register_module(name=_spec.dataset_type, module=type(_spec.dataset_type, (MedicalSliceDataset,), {
        'METAINFO': dict(classes=tuple(_spec.classes), palette=palette(len(_spec.classes))),
        '__doc__': f'{_spec.description} (slices of ``prepare_dataset.py {_spec.name}``).',
        '__module__': __name__}))
