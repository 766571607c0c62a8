"""CrossMoDA vestibular schwannoma + cochlea MRI slices (ceT1 source, hrT2 / T2 target)."""
from mmseg.registry import DATASETS

from ..conversion.crossmoda import CLASSES, CLASSES_2023
from .base import MedicalSliceDataset


@DATASETS.register_module()
class CrossMoDADataset(MedicalSliceDataset):
    """crossMoDA 2021 / 2022 axial MRI slices: background, vestibular schwannoma, cochlea (pseudo labels may
    hold 255)."""

    METAINFO = dict(classes=CLASSES, palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])


@DATASETS.register_module()
class CrossMoDA2023Dataset(MedicalSliceDataset):
    """crossMoDA 2023 axial MRI slices: background, intra-meatal VS, extra-meatal VS, cochlea (pseudo labels
    may hold 255)."""

    METAINFO = dict(classes=CLASSES_2023, palette=[[0, 0, 0], [255, 160, 0], [255, 0, 0], [0, 255, 0]])
