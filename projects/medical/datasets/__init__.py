"""MMSegmentation datasets of the prepared 2D slices (registered in ``mmseg.registry.DATASETS``)."""
from .base import MedicalSliceDataset
from .cranium import CraniumDataset

__all__ = ['MedicalSliceDataset', 'CraniumDataset']
