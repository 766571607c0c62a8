"""CrossMoDA vestibular schwannoma + cochlea MRI slices (ceT1 source, hrT2 target)."""
from mmseg.registry import DATASETS

from ..conversion.crossmoda import CLASSES
from .base import MedicalSliceDataset


@DATASETS.register_module()
class CrossMoDADataset(MedicalSliceDataset):
    """Axial MRI slices: classes background, vestibular schwannoma, cochlea (pseudo labels may hold 255)."""

    METAINFO = dict(classes=CLASSES, palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])
