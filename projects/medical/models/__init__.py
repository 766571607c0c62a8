"""Model parts registered in mmseg's MODELS registry."""
from .losses import ClassDiceLoss

__all__ = ['ClassDiceLoss']
