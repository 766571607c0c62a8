"""MMSegmentation extension for 2D medical image segmentation.

``import mmseg_medical`` (or ``custom_imports=dict(imports=['mmseg_medical'])`` in a config) registers the
datasets and metrics in mmseg's registries and lets torch >= 2.6 load mmengine checkpoints with
``weights_only=True``. With mmcv-lite (no compiled ops, the default install) it first provides the
two ``mmcv.ops`` functions mmseg imports (:mod:`mmseg_medical.mmcv_ops`). The conversion library
(:mod:`mmseg_medical.conversion`) does not need mmseg.
"""
from .version import __version__

try:
    from .mmcv_ops import install as _install_mmcv_ops
except ImportError:  # conversion-only use without torch
    pass
else:
    _install_mmcv_ops()  # mmcv-lite: pure-PyTorch point_sample / sigmoid_focal_loss before mmseg.models

try:
    import mmseg  # noqa: F401
except ImportError:  # conversion-only use: the mmseg stack is not installed
    pass
else:
    from .torch_compat import register_checkpoint_safe_globals

    register_checkpoint_safe_globals()
    from . import datasets, models  # noqa: F401,E402  (registers the datasets and losses)
    from .evaluation import evaluator, volume_metric  # noqa: F401,E402  (registers SegEvaluator, VolumeMetric)
    from . import report_hook  # noqa: F401,E402  (registers ReportHook: mim test --out DIR writes DIR/report.html)
    from . import checkpoints  # noqa: F401,E402  (registers CheckpointFitHook)
    from . import threads  # noqa: F401,E402  (registers CpuThreadsHook: tiny_overrides' torch threads)

__all__ = ['__version__']
