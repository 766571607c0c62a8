"""Base class for datasets written by ``tools/prepare_dataset.py``."""
from __future__ import annotations

import os.path as osp
from typing import List

from mmseg.datasets import BaseSegDataset

from ..errors import MedSegError


class MedicalSliceDataset(BaseSegDataset):
    """8-bit PNG slices ``images/<case>_<slice:04d>.png`` and uint8 class-index masks ``masks/...``,
    selected by a split list (``ann_file='splits/<name>.txt'``, one slice stem per line).

    * Labelled split: ``data_prefix=dict(img_path='images/', seg_map_path='masks/')``. Every listed slice
      must have its mask: a list naming an image-only slice (e.g. an unlabelled target-domain split) is
      refused with one error line, so a training config never takes unlabelled slices by accident.
    * Image-only split (inference, pseudo-labelling): ``data_prefix=dict(img_path='images/')`` and a
      pipeline without ``LoadAnnotations``; the samples carry no ``seg_map_path``.

    ``manifest.csv`` at the dataset root maps slices back to cases (see
    :class:`mmseg_medical.evaluation.VolumeMetric`). Masks hold class indices starting at 0 (background),
    so ``reduce_zero_label`` is False.
    """

    def __init__(self, img_suffix: str = '.png', seg_map_suffix: str = '.png', reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)

    def load_data_list(self) -> List[dict]:
        if self.ann_file and not osp.isfile(self.ann_file):
            raise MedSegError(self.ann_file, 'split list not found (prepare the dataset, or check ann_file: '
                                             'splits/<name>.txt relative to data_root)')
        data_list = super().load_data_list()
        if self.data_prefix.get('seg_map_path'):
            for info in data_list:
                if not osp.isfile(info['seg_map_path']):
                    where = self.ann_file or self.data_prefix.get('img_path')
                    raise MedSegError(info['seg_map_path'], f'no mask for slice {osp.basename(info["img_path"])} '
                                      f'listed by {where}: an image-only split cannot be loaded with '
                                      'seg_map_path (drop it and LoadAnnotations for inference)')
        return data_list
