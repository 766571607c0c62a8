"""Model parts registered in mmseg's MODELS registry (and mmengine's weight initialisers)."""
from .in_channels import PretrainedInChannelsInit, adapt_kernel
from .losses import ClassDiceLoss

__all__ = ['ClassDiceLoss', 'PretrainedInChannelsInit', 'adapt_kernel']
