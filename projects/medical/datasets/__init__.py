"""MMSegmentation datasets of the prepared 2D slices (registered in ``mmseg.registry.DATASETS``)."""
from .base import MedicalSliceDataset
from .cranium import CraniumDataset
from .covid19 import Covid19Dataset  # noqa: F401  (and the NIfTI-pair spec datasets)
from .crossmoda import CrossMoDADataset  # noqa: F401
from .hemseg import HemSegDataset  # noqa: F401
from .samplers import ForegroundOversamplingSampler, foreground_indices

__all__ = ['MedicalSliceDataset', 'CraniumDataset', 'ForegroundOversamplingSampler', 'foreground_indices']
