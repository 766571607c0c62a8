"""HemSeg-200/500 (RSNA head CT) hemorrhage segmentation slices."""
from mmseg.registry import DATASETS

from ..conversion.hemseg import CLASSES
from .base import MedicalSliceDataset


@DATASETS.register_module()
class HemSegDataset(MedicalSliceDataset):
    """RSNA head CT slices (brain window, or three windows as the channels of a colour PNG) with IPH/IVH
    masks: classes background, hemorrhage. ``LoadImageFromFile`` reads either kind as 3 channels."""

    METAINFO = dict(classes=CLASSES, palette=[[0, 0, 0], [255, 0, 0]])
