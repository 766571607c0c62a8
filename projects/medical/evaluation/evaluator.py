"""An mmengine ``Evaluator`` that understands ``mim test … --out DIR`` with several metrics."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from mmengine.evaluator import Evaluator
from mmseg.registry import EVALUATOR


@EVALUATOR.register_module()
class SegEvaluator(Evaluator):
    """``Evaluator`` over several metrics that also accepts ``output_dir`` / ``keep_results``.

    mmseg's ``tools/test.py --out DIR`` sets ``test_evaluator['output_dir']``, which breaks on a plain
    list of metrics. This evaluator forwards it: slice predictions go to ``DIR`` (``IoUMetric`` writes
    ``<slice>.png``) and restacked volumes to ``DIR/volumes`` (``VolumeMetric`` writes ``<case>.nii.gz``).
    """

    def __init__(self, metrics: Union[dict, Sequence[dict]], output_dir: Optional[str] = None,
                 keep_results: bool = False) -> None:
        super().__init__(metrics)
        if output_dir is None:
            return
        from .volume_metric import VolumeMetric

        for metric in self.metrics:
            if isinstance(metric, VolumeMetric):  # dataset-specific subclasses too
                metric.output_dir = os.path.join(output_dir, 'volumes')
            elif hasattr(metric, 'output_dir'):
                metric.output_dir = output_dir
                metric.keep_results = keep_results
                os.makedirs(output_dir, exist_ok=True)
