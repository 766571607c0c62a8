"""MMSegmentation extension for 2D medical image segmentation.

``import mmseg_medical`` (or ``custom_imports=dict(imports=['mmseg_medical'])`` in a config) registers the
datasets and metrics in mmseg's registries and lets torch >= 2.6 load mmengine checkpoints with
``weights_only=True``. The conversion library (:mod:`mmseg_medical.conversion`) does not need mmseg.
"""
from .version import __version__

try:
    import mmseg  # noqa: F401
except ImportError:  # conversion-only use: the mmseg stack is not installed
    pass
else:
    from .torch_compat import register_checkpoint_safe_globals

    register_checkpoint_safe_globals()
    from . import datasets, models  # noqa: F401,E402  (registers the datasets and losses)
    from .evaluation import evaluator, volume_metric  # noqa: F401,E402  (registers SegEvaluator, VolumeMetric)

__all__ = ['__version__']
