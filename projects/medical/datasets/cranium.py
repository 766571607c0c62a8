"""Cranium (CT-ICH) hemorrhage segmentation slices."""
from mmseg.registry import DATASETS

from ..conversion.cranium import CLASSES
from .base import MedicalSliceDataset


@DATASETS.register_module()
class CraniumDataset(MedicalSliceDataset):
    """Head CT slices (brain window) with hemorrhage masks: classes background, hemorrhage."""

    METAINFO = dict(classes=CLASSES, palette=[[0, 0, 0], [255, 0, 0]])
