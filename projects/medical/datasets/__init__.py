"""MMSegmentation datasets of the prepared 2D slices (registered in ``mmseg.registry.DATASETS``) and the 2.5D
loading transform (``LoadSliceStack``, registered in ``mmseg.registry.TRANSFORMS``)."""
from .base import MedicalSliceDataset
from .cranium import CraniumDataset
from .covid19 import Covid19Dataset  # noqa: F401  (and the NIfTI-pair spec datasets)
from .crossmoda import CrossMoDA2023Dataset, CrossMoDADataset  # noqa: F401
from .hemseg import HemSegDataset  # noqa: F401
from .nnunet import NnUNetDataset  # noqa: F401
from .samplers import ForegroundOversamplingSampler, foreground_indices
from .transforms import BrightnessContrastDistortion, LoadSliceStack, neighbour_indices, stack_slices

__all__ = ['MedicalSliceDataset', 'CraniumDataset', 'ForegroundOversamplingSampler', 'foreground_indices',
           'BrightnessContrastDistortion', 'LoadSliceStack', 'neighbour_indices', 'stack_slices']
