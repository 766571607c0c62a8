"""``hemseg-paper``: the HemSeg paper's test scripts, on the paper's grid, with MONAI's metrics.

The paper's ``model_inference/*_test.py`` (songchangwei/3DCT-SD-IVH-ICH) load image and label with MONAI
and apply ``Orientationd(axcodes='RAS')`` then ``Spacingd(pixdim=PIXDIM, mode=('bilinear', 'nearest'))``;
the model predicts on that grid and the one-channel output is thresholded there. The scores are
``DiceMetric``, ``MeanIoU`` and ``HausdorffDistanceMetric(percentile=95)``, all with
``include_background=True`` and no spacing, so HD95 is in *voxels* of that grid. Only ``SegResNet_test.py`` and
``SwinUNETR_test.py`` build them with ``reduction='none'`` (per-case values, saved for the bootstrap);
``Unet3D``, ``Vnet``, ``Attention_unet`` and ``UNetr`` use ``reduction='mean'`` (NaN cases left out). Table 1's
means and CIs come from ``evaluation/eval_bootstrap_ci.py``: ``np.average`` of the saved per-case values, which
does *not* skip NaN (a NaN would make the row NaN; Table 1 has none). Here NaN cases are left out of the mean
and the CI (MONAI's ``'mean'`` rule) and flagged; the two agree on a test set without empty masks. No nnU-Net
scoring script is published: that its row shares this grid and HD95 unit is an assumption.

Our prediction lives on the source scan's grid (the label file's), so this protocol maps ground truth
*and* prediction to the paper's grid exactly as MONAI 1.6.1 maps the label (:func:`to_paper_grid`:
nibabel's orientation, MONAI's ``zoom_affine`` / ``compute_shape_offset`` arithmetic and torch's
``affine_grid`` + ``grid_sample`` in float64, nearest, border padding, ``align_corners=False``: the same
operations in the same dtype, so nearest-neighbour ties go the same way). Then per class, one-vs-rest:

* Dice ``2|P∩G| / (|P| + |G|)`` and IoU ``|P∩G| / |P∪G|`` (MONAI's ``ignore_empty=True``: NaN when the
  ground truth is empty, 0 when only the prediction is);
* HD95 in voxels: :func:`~.hemseg.monai_hd95` with unit spacing. MONAI 1.6.1 gives NaN (with a warning)
  whenever either mask is empty: an empty ground truth, and also an empty prediction of a non-empty
  ground truth (its distances are all ``inf`` and ``torch.quantile`` of ``inf`` is NaN);
* NaN values are left out of the means (``omit_nan``), as ``aggregate(reduction='mean')`` does; rows are
  flagged with the empty category. CI as ``evaluation/eval_bootstrap_ci.py`` (``RandomState(47)``).

The paper pins ``monai==1.3.0``; the tests call MONAI 1.6.1. ``tools/benchmarks/monai_1_3_0_check.sh`` runs the
same comparisons against 1.3.0 (NumPy 2 shims for its ``ndarray.ptp`` calls): equal grids and values there too.

MONAI reports float32 values; ours are float64 (Dice and IoU round to MONAI's float32 values exactly,
HD95 agrees to about 1e-6 relative: MONAI interpolates its float32 distances in float32 with
q = float32(0.95)).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ...errors import MedSegError
from ..surface import BOTH_EMPTY, GT_EMPTY, NOT_EMPTY, empty_category
from .base import register_protocol
from .hemseg import HemSegProtocol, monai_hd95

SOURCE = ('songchangwei/3DCT-SD-IVH-ICH: model_inference/SegResNet_test.py (same transforms and metrics in the '
          'other *_test.py) @ d8e2199 (MONAI Orientationd RAS + Spacingd nearest, DiceMetric, MeanIoU, '
          'HausdorffDistanceMetric(percentile=95)) and evaluation/eval_bootstrap_ci.py')
#: ``Spacingd(pixdim=...)`` of the paper's test scripts (mm).
PIXDIM = (0.4882810115814209, 0.4882810115814209, 4.649400138854981)
#: ``monai.data.utils.AFFINE_TOL``: a source spacing this close to the target is kept as it is.
AFFINE_TOL = 1e-3


def _affine_to_spacing(affine: np.ndarray, r: int = 3) -> np.ndarray:
    """``monai.data.utils.affine_to_spacing`` (numpy branch)."""
    a = np.asarray(affine, dtype=np.float64)[:r, :r]
    spacing = np.sqrt(np.sum(a * a, axis=0))
    spacing[spacing == 0] = 1.0
    return spacing


def _zoom_affine(affine: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``monai.data.utils.zoom_affine(affine, scale, diagonal=False)``: the rotation of ``affine`` (shear
    removed by a Cholesky factorisation) with the zooms ``scale``, no translation."""
    affine = np.array(affine, dtype=float, copy=True)
    scale = np.array(scale, dtype=float, copy=True)
    scale[scale == 0] = 1.0
    rzs = affine[:-1, :-1]
    zs = np.linalg.cholesky(rzs.T @ rzs).T
    rotation = rzs @ np.linalg.inv(zs)
    new_affine = np.eye(len(affine))
    new_affine[:-1, :-1] = rotation @ np.diag(np.sign(np.diag(zs)) * np.abs(scale))
    return new_affine


def _compute_shape_offset(shape: Sequence[int], in_affine: np.ndarray, out_affine: np.ndarray
                          ) -> Tuple[np.ndarray, np.ndarray]:
    """``monai.data.utils.compute_shape_offset(shape, in_affine, out_affine, scale_extent=False)``."""
    shape = np.array(tuple(shape), copy=True, dtype=float)
    corners = np.asarray(np.meshgrid(*[(0.0, dim - 1.0) for dim in shape], indexing='ij')).reshape((len(shape), -1))
    corners = np.concatenate((corners, np.ones_like(corners[:1])))
    corners_out = np.linalg.solve(out_affine, in_affine) @ corners
    corners = in_affine @ corners
    all_dist = corners_out[:-1].copy()
    corners_out = corners_out[:-1] / corners_out[-1]
    out_shape = np.round(np.ptp(corners_out, axis=1) + 1.0)
    offset = None
    for i in range(corners.shape[1]):
        min_corner = np.min(all_dist - all_dist[:, i:i + 1], 1)
        if np.allclose(min_corner, 0.0, rtol=AFFINE_TOL):
            offset = corners[:-1, i]
            break
    if offset is None:
        offset = in_affine[:-1, :-1] @ (shape / 2.0) + in_affine[:-1, -1] - out_affine[:-1, :-1] @ (out_shape / 2.0)
    return out_shape.astype(int), offset


def _normalize_transform(shape: Sequence[int]):
    """``monai.networks.utils.normalize_transform(shape, align_corners=False, zero_centered=False)``, float64."""
    import torch
    size = torch.as_tensor([float(s) for s in shape], dtype=torch.float64)
    norm = size.clone()
    norm[norm <= 0.0] = 2.0
    norm = torch.diag(torch.cat((2.0 / norm, torch.ones((1,), dtype=torch.float64))))
    norm[:-1, -1] = 1.0 / size - 1.0
    return norm.unsqueeze(0)


def _orient_ras(arrays: np.ndarray, affine: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``Orientationd(axcodes='RAS')`` on channel-first ``arrays`` (C, i, j, k): flips, then the axis
    permutation, and ``affine @ inv_ornt_aff`` (numpy, as MONAI's meta update)."""
    import nibabel as nib
    shape = arrays.shape[1:]
    ornt = nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt('RAS'))
    xform = nib.orientations.inv_ornt_aff(ornt, shape)
    flips = [1 + ax for ax, flip in enumerate(ornt[:, 1]) if flip == -1]
    if flips:
        arrays = np.flip(arrays, axis=flips)
    order = [0] + [1 + int(a) for a in np.argsort(ornt[:, 0])]
    if order != list(range(arrays.ndim)):
        arrays = np.transpose(arrays, order)
    return arrays, affine @ xform


def to_paper_grid(arrays: Sequence[np.ndarray], affine: np.ndarray, pixdim: Sequence[float] = PIXDIM
                  ) -> Tuple[Tuple[np.ndarray, ...], np.ndarray]:
    """Label maps of one 3D grid (NIfTI ``i, j, k`` order, voxel-to-world ``affine``) on the paper's grid,
    exactly as MONAI 1.6.1's ``Orientationd(axcodes='RAS')`` then ``Spacingd(pixdim, mode='nearest')``
    (padding ``border``, ``align_corners=False``, ``diagonal=False``, ``scale_extent=False``, float64)
    map a label file loaded by ``LoadImaged`` (nibabel). Returns the arrays (their own dtypes) and the
    output affine (MONAI's ``meta['affine']``)."""
    import torch

    arrays = [np.asarray(a) for a in arrays]
    if not arrays or any(a.shape != arrays[0].shape for a in arrays) or arrays[0].ndim != 3:
        raise MedSegError(None, 'to_paper_grid needs 3D label maps of one shape, got '
                                f'{[a.shape for a in arrays]}')
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise MedSegError(None, f'to_paper_grid needs a 4x4 affine, got shape {affine.shape}')
    stack = np.stack([a.astype(np.float64) for a in arrays])
    # ---- Orientationd(axcodes='RAS')
    stack, affine = _orient_ras(stack, affine)
    in_shape = stack.shape[1:]
    # ---- Spacing.__call__: target zooms (a source zoom within AFFINE_TOL of the target is kept), output grid
    out_d = np.array(pixdim, dtype=np.float64)[:3].copy()
    orig_d = _affine_to_spacing(affine)
    for idx, d in enumerate(orig_d):
        target = out_d[idx]
        out_d[idx] = d if (target - AFFINE_TOL) <= d <= (target + AFFINE_TOL) else target
    new_affine = _zoom_affine(affine, out_d)
    out_shape, offset = _compute_shape_offset(in_shape, affine, new_affine)
    new_affine[:3, -1] = offset[:3]
    # ---- spatial_resample
    src_affine = torch.as_tensor(affine, dtype=torch.float64)
    dst_affine = torch.as_tensor(new_affine, dtype=torch.float64)
    xform_np = np.linalg.solve(src_affine.numpy(), dst_affine.numpy())
    xform = torch.as_tensor(xform_np, dtype=torch.float64)
    same_size = tuple(int(s) for s in out_shape) == tuple(in_shape)
    unchanged = same_size and (torch.allclose(src_affine, dst_affine, atol=AFFINE_TOL)
                               or torch.allclose(xform, torch.eye(4, dtype=torch.float64), atol=AFFINE_TOL))
    if unchanged:
        out = [s.astype(a.dtype) for s, a in zip(stack, arrays)]
        return tuple(out), affine
    # AffineTransform(normalized=False, mode='nearest', padding_mode='border', align_corners=False,
    # reverse_indexing=True).forward
    theta = xform[None].clone()
    src_size, dst_size = tuple(in_shape), tuple(int(s) for s in out_shape)
    dst_norm = _normalize_transform(dst_size)
    theta = _normalize_transform(src_size) @ theta @ torch.as_tensor(np.linalg.inv(dst_norm.numpy()))
    rev_idx = torch.as_tensor(range(2, -1, -1))
    theta[:, :3] = theta[:, rev_idx]
    theta[:, :, :3] = theta[:, :, rev_idx]
    src = torch.from_numpy(np.ascontiguousarray(stack))[None]
    grid = torch.nn.functional.affine_grid(theta=theta[:, :3], size=[1, src.shape[1], *dst_size], align_corners=False)
    del theta
    sampled = torch.nn.functional.grid_sample(src, grid, mode='nearest', padding_mode='border',
                                              align_corners=False)[0].to(torch.float32).numpy()
    out_affine = (src_affine @ xform).numpy()
    return tuple(s.astype(a.dtype) for s, a in zip(sampled, arrays)), out_affine


class HemSegPaperProtocol(HemSegProtocol):
    def to_grid(self, gt: np.ndarray, pred: np.ndarray, zooms: Tuple[float, ...], affine: np.ndarray
                ) -> Tuple[np.ndarray, np.ndarray, Tuple[float, ...], np.ndarray]:
        if gt.ndim != 3:
            raise MedSegError(None, f"protocol {self.name} scores 3D volumes on the paper's grid, "
                                    f'got shape {gt.shape}')
        (gt, pred), new_affine = to_paper_grid((gt, pred), affine)
        return gt, pred, tuple(float(z) for z in _affine_to_spacing(new_affine)), new_affine

    def spacing(self, zooms: Sequence[float], affine) -> Tuple[float, ...]:
        return (1.0,) * len(zooms)

    def class_row(self, gt_mask: np.ndarray, pred_mask: np.ndarray, spacing: Tuple[float, ...],
                  tolerance: float, diagonal: float) -> dict:
        n_gt, n_pred = int(np.count_nonzero(gt_mask)), int(np.count_nonzero(pred_mask))
        empty = empty_category(n_gt > 0, n_pred > 0)
        if empty in (GT_EMPTY, BOTH_EMPTY):   # ignore_empty=True: NaN; HD95: NaN (no ground-truth edges)
            return {'dice': float('nan'), 'iou': float('nan'), 'hd95_vox': float('nan'), 'empty': empty}
        if empty != NOT_EMPTY:                # empty prediction: 0, 0 and HD95 NaN (quantile of inf)
            return {'dice': 0.0, 'iou': 0.0, 'hd95_vox': float('nan'), 'empty': empty}
        n_both = int(np.count_nonzero(gt_mask & pred_mask))
        return {'dice': 2.0 * n_both / (n_gt + n_pred), 'iou': n_both / (n_gt + n_pred - n_both),
                'hd95_vox': monai_hd95(gt_mask, pred_mask, spacing), 'empty': empty}


HEMSEG_PAPER = register_protocol(HemSegPaperProtocol(
    name='hemseg-paper',
    title="the HemSeg paper's test scripts: RAS grid at the paper's spacing, MONAI Dice, IoU and HD95 in voxels",
    source=SOURCE,
    metrics=('dice', 'iou', 'hd95_vox'),
    spacing_rule='none: HD95 in voxels of the paper\'s grid (MONAI HausdorffDistanceMetric without spacing)',
    grid_rule=('ground truth and prediction on the source grid, both mapped as MONAI maps the label: '
               'Orientationd RAS, then Spacingd pixdim 0.48828 x 0.48828 x 4.6494 mm, nearest, border padding'),
    empty_rule=('MONAI: empty ground truth: Dice = IoU = HD95 = NaN (ignore_empty); empty prediction: Dice = '
                'IoU = 0, HD95 NaN; NaN left out of the mean; rows flagged'),
    aggregation_rule=('mean ± sample std over cases without NaN (as aggregate(reduction="mean")); 95% CI of '
                      '5000 resamples from RandomState(47) as the paper'),
    omit_nan=True,
))
