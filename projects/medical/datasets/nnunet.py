"""Slices of any nnU-Net / Decathlon release (``prepare_dataset.py nnunet`` / ``msd``): classes from the config's
``metainfo`` (``tools/plan.py`` writes them from the prepared ``dataset.json``)."""
from mmseg.registry import DATASETS

from .base import MedicalSliceDataset


@DATASETS.register_module()
class NnUNetDataset(MedicalSliceDataset):
    """A prepared nnU-Net or Decathlon dataset; give ``metainfo=dict(classes=..., palette=...)``."""
