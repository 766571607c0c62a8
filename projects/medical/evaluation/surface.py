"""Surface distances between two binary masks (DeepMind ``surface-distance`` definitions).

This re-implements ``compute_surface_distances``, ``compute_surface_dice_at_tolerance``,
``compute_robust_hausdorff`` and ``compute_average_surface_distance`` of DeepMind's
``surface-distance`` package (used e.g. by the COVID-19-CT-Seg benchmark) without depending on it:

* Surfaces live on the grid of voxel *corners*. Each corner gets the binary code of its 2x2 (2D) or
  2x2x2 (3D) voxel neighbourhood (voxels outside the array count as background). A corner whose code is
  neither all-background nor all-foreground is a surface element ("surfel"); its area (3D, mm^2) or
  length (2D, mm) comes from the marching-squares/-cubes lookup tables below, scaled by ``spacing``.
* Distances (mm) from each surfel of one mask to the other mask's surface come from a Euclidean distance
  transform with ``sampling=spacing``.
* ``spacing`` gives one voxel size per *array axis* (2 or 3 values).

Speed: everything is computed in the union bounding box of both masks plus a one-voxel zero margin.
This is exact, not an approximation: every surfel of either mask is a corner of a foreground voxel, so
every surfel lies inside that box, and the nearest surfel of the other mask is therefore found inside
the box as well. The margin only makes sure the surfaces are closed (never cut by the box border); a
wider margin (e.g. the NSD tolerance) would change no distance. Outside the box both masks are
background, so the neighbour codes there are 0 and carry no surfel.

Empty-mask policy (applied identically by :func:`nsd`, :func:`hd95`, :func:`assd` and, for Dice and IoU,
by :func:`mmseg_medical.evaluation.metrics.case_metrics`):

* both ground truth and prediction empty (``'both_empty'``): dice = iou = nsd = 1, hd95 = assd = 0;
* ground truth empty, prediction not (``'gt_empty'``, a false positive) or prediction empty, ground truth
  not (``'pred_empty'``, a false negative): dice = iou = nsd = 0, and hd95 = assd = the largest distance
  possible in the volume, i.e. the diagonal of its physical extent ``sqrt(sum((shape_i * spacing_i)^2))``
  mm. The penalty is finite, so such a case stays in every mean instead of being dropped or turning it
  into ``inf``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..errors import MedSegError

#: ``empty`` flag of a class with a non-empty ground truth and a non-empty prediction.
NOT_EMPTY = ''
#: Both ground truth and prediction are empty: a perfect score (dice=iou=nsd=1, hd95=assd=0).
BOTH_EMPTY = 'both_empty'
#: Ground truth empty, prediction not (false positive): dice=iou=nsd=0, hd95=assd=volume diagonal.
GT_EMPTY = 'gt_empty'
#: Prediction empty, ground truth not (false negative): dice=iou=nsd=0, hd95=assd=volume diagonal.
PRED_EMPTY = 'pred_empty'
#: All empty categories, in the order the summary reports them.
EMPTY_CATEGORIES: Tuple[str, ...] = (BOTH_EMPTY, GT_EMPTY, PRED_EMPTY)

# Bit weights of the 2x2 (2D) / 2x2x2 (3D) neighbourhood, as in DeepMind's lookup_tables.py: the voxel at
# offset (a, b[, c]) from the corner's lower neighbour contributes ``kernel[a, b[, c]]`` to the code.
_KERNEL_2D = np.array([[8, 4], [2, 1]], dtype=np.uint8)
_KERNEL_3D = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]], dtype=np.uint8)

# Marching-cubes surfel normals for each of the 256 3D neighbour codes, copied from DeepMind's
# surface-distance package (lookup_tables.py, Apache-2.0). The length of each normal is the area of one
# triangle for unit spacing; a code's area is the sum over its triangles after scaling by the spacing.
_NEIGHBOUR_CODE_TO_NORMALS = [
    [[0, 0, 0]],
    [[0.125, 0.125, 0.125]],
    [[-0.125, -0.125, 0.125]],
    [[-0.25, -0.25, 0.0], [0.25, 0.25, -0.0]],
    [[0.125, -0.125, 0.125]],
    [[-0.25, -0.0, -0.25], [0.25, 0.0, 0.25]],
    [[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[0.5, 0.0, -0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[-0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    [[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    [[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125]],
    [[-0.5, 0.0, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]],
    [[0.125, -0.125, -0.125]],
    [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25]],
    [[-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, -0.5, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, 0.0, -0.5], [0.25, 0.25, 0.25], [-0.125, -0.125, -0.125]],
    [[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [0.125, -0.125, -0.125]],
    [[0.125, 0.125, 0.125], [0.375, 0.375, 0.375], [0.0, -0.25, 0.25], [-0.25, 0.0, 0.25]],
    [[0.125, -0.125, -0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    [[0.375, 0.375, 0.375], [0.0, 0.25, -0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    [[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.125, 0.125, 0.125]],
    [[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25]],
    [[0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    [[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25]],
    [[0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.125, -0.125, 0.125], [-0.25, -0.0, -0.25], [0.25, 0.0, 0.25]],
    [[0.0, -0.25, 0.25], [0.0, 0.25, -0.25], [0.125, -0.125, 0.125]],
    [[-0.375, -0.375, 0.375], [-0.0, 0.25, 0.25], [0.125, 0.125, -0.125], [-0.25, -0.0, -0.25]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[-0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.25, 0.25, -0.25], [0.25, 0.25, -0.25], [0.125, 0.125, -0.125], [-0.125, -0.125, 0.125]],
    [[0.125, -0.125, 0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    [[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125], [0.125, -0.125, 0.125]],
    [[0.0, 0.25, -0.25], [0.375, -0.375, -0.375], [-0.125, 0.125, 0.125], [0.25, 0.25, 0.0]],
    [[-0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    [[0.0, 0.5, 0.0], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    [[0.0, 0.5, 0.0], [0.125, -0.125, 0.125], [-0.25, 0.25, -0.25]],
    [[0.0, 0.5, 0.0], [0.0, -0.5, 0.0]],
    [[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0], [0.125, -0.125, 0.125]],
    [[-0.375, -0.375, -0.375], [-0.25, 0.0, 0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    [[0.125, 0.125, 0.125], [0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    [[0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    [[-0.125, 0.125, 0.125], [0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    [[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.375, 0.375, -0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    [[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    [[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    [[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [-0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    [[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    [[-0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [-0.25, -0.25, 0.0], [0.25, 0.25, -0.0]],
    [[0.0, -0.25, 0.25], [0.0, -0.25, 0.25]],
    [[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    [[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.375, -0.375, 0.375], [0.0, -0.25, -0.25], [-0.125, 0.125, -0.125], [0.25, 0.25, 0.0]],
    [[-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    [[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    [[-0.25, 0.25, -0.25], [-0.25, 0.25, -0.25], [-0.125, 0.125, -0.125], [-0.125, 0.125, -0.125]],
    [[-0.25, 0.0, -0.25], [0.375, -0.375, -0.375], [0.0, 0.25, -0.25], [-0.125, 0.125, 0.125]],
    [[0.5, 0.0, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    [[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    [[-0.0, 0.0, 0.5], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    [[-0.25, -0.0, -0.25], [-0.375, 0.375, 0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, 0.125]],
    [[0.0, 0.0, -0.5], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    [[-0.0, 0.0, 0.5], [0.0, 0.0, 0.5]],
    [[0.125, 0.125, 0.125], [0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    [[0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    [[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25], [-0.125, 0.125, 0.125]],
    [[-0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    [[0.125, -0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    [[0.25, 0.0, 0.25], [-0.375, -0.375, 0.375], [-0.25, 0.25, 0.0], [-0.125, -0.125, 0.125]],
    [[-0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    [[0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    [[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    [[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    [[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.125, -0.125, 0.125]],
    [[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    [[0.0, 0.25, 0.25], [0.0, 0.25, 0.25], [0.125, -0.125, -0.125]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    [[-0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[-0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.5, 0.0, -0.0], [0.25, -0.25, -0.25], [0.125, -0.125, -0.125]],
    [[-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    [[0.375, -0.375, 0.375], [0.0, 0.25, 0.25], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    [[0.0, -0.5, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[-0.375, -0.375, 0.375], [0.25, -0.25, 0.0], [0.0, 0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    [[0.125, 0.125, 0.125], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    [[0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    [[0.5, 0.0, -0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    [[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    [[-0.25, -0.0, -0.25], [0.25, 0.0, 0.25], [0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    [[-0.25, -0.25, 0.0], [0.25, 0.25, -0.0], [0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.25, -0.25, 0.0], [0.25, 0.25, -0.0], [0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    [[-0.25, -0.0, -0.25], [0.25, 0.0, 0.25], [0.125, 0.125, 0.125]],
    [[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    [[0.5, 0.0, -0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    [[0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    [[0.125, 0.125, 0.125], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    [[-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    [[-0.375, -0.375, 0.375], [0.25, -0.25, 0.0], [0.0, 0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.0, -0.5, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[0.375, -0.375, 0.375], [0.0, 0.25, 0.25], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    [[-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    [[0.5, 0.0, -0.0], [0.25, -0.25, -0.25], [0.125, -0.125, -0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[-0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[-0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[0.0, 0.25, 0.25], [0.0, 0.25, 0.25], [0.125, -0.125, -0.125]],
    [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    [[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.125, -0.125, 0.125]],
    [[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    [[0.125, 0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    [[-0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    [[0.25, 0.0, 0.25], [-0.375, -0.375, 0.375], [-0.25, 0.25, 0.0], [-0.125, -0.125, 0.125]],
    [[0.125, -0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    [[-0.25, -0.0, -0.25], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    [[-0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25], [-0.125, 0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    [[0.125, 0.125, 0.125], [0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    [[-0.0, 0.0, 0.5], [0.0, 0.0, 0.5]],
    [[0.0, 0.0, -0.5], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    [[-0.25, -0.0, -0.25], [-0.375, 0.375, 0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    [[-0.0, 0.0, 0.5], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    [[0.5, 0.0, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    [[-0.25, 0.0, -0.25], [0.375, -0.375, -0.375], [0.0, 0.25, -0.25], [-0.125, 0.125, 0.125]],
    [[-0.25, 0.25, -0.25], [-0.25, 0.25, -0.25], [-0.125, 0.125, -0.125], [-0.125, 0.125, -0.125]],
    [[-0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    [[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[0.375, -0.375, 0.375], [0.0, -0.25, -0.25], [-0.125, 0.125, -0.125], [0.25, 0.25, 0.0]],
    [[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    [[0.0, -0.25, 0.25], [0.0, -0.25, 0.25]],
    [[-0.125, -0.125, 0.125], [-0.25, -0.25, 0.0], [0.25, 0.25, -0.0]],
    [[-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.125, -0.125, 0.125]],
    [[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    [[0.125, 0.125, 0.125], [-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    [[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [-0.125, -0.125, 0.125]],
    [[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [0.25, 0.25, -0.0]],
    [[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    [[-0.375, 0.375, -0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    [[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    [[0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    [[0.125, 0.125, 0.125], [0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    [[-0.375, -0.375, -0.375], [-0.25, 0.0, 0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    [[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0], [0.125, -0.125, 0.125]],
    [[0.0, 0.5, 0.0], [0.0, -0.5, 0.0]],
    [[0.0, 0.5, 0.0], [0.125, -0.125, 0.125], [-0.25, 0.25, -0.25]],
    [[0.0, 0.5, 0.0], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    [[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    [[-0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.0, 0.25, -0.25], [0.375, -0.375, -0.375], [-0.125, 0.125, 0.125], [0.25, 0.25, 0.0]],
    [[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125], [0.125, -0.125, 0.125]],
    [[0.125, -0.125, 0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    [[0.25, 0.25, -0.25], [0.25, 0.25, -0.25], [0.125, 0.125, -0.125], [-0.125, -0.125, 0.125]],
    [[-0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    [[-0.375, -0.375, 0.375], [-0.0, 0.25, 0.25], [0.125, 0.125, -0.125], [-0.25, -0.0, -0.25]],
    [[0.0, -0.25, 0.25], [0.0, 0.25, -0.25], [0.125, -0.125, 0.125]],
    [[0.125, -0.125, 0.125], [-0.25, -0.0, -0.25], [0.25, 0.0, 0.25]],
    [[0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25]],
    [[0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    [[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    [[0.125, -0.125, 0.125]],
    [[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25]],
    [[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.125, 0.125, 0.125]],
    [[0.375, 0.375, 0.375], [0.0, 0.25, -0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    [[0.125, -0.125, -0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    [[0.125, 0.125, 0.125], [0.375, 0.375, 0.375], [0.0, -0.25, 0.25], [-0.25, 0.0, 0.25]],
    [[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [0.125, -0.125, -0.125]],
    [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[-0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    [[-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, 0.0, -0.5], [0.25, 0.25, 0.25], [-0.125, -0.125, -0.125]],
    [[0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, -0.5, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25]],
    [[0.125, -0.125, -0.125]],
    [[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]],
    [[-0.5, 0.0, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    [[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125]],
    [[0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    [[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    [[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    [[0.125, 0.125, 0.125], [-0.125, 0.125, 0.125]],
    [[-0.125, 0.125, 0.125]],
    [[0.5, 0.0, -0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    [[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    [[-0.25, -0.0, -0.25], [0.25, 0.0, 0.25]],
    [[0.125, -0.125, 0.125]],
    [[-0.25, -0.25, 0.0], [0.25, 0.25, -0.0]],
    [[-0.125, -0.125, 0.125]],
    [[0.125, 0.125, 0.125]],
    [[0, 0, 0]],
]


# All normals in one array, with the neighbour code each belongs to (for a vectorised area table).
_NORMALS = np.array([n for normals in _NEIGHBOUR_CODE_TO_NORMALS for n in normals], dtype=np.float64)
_NORMAL_CODES = np.repeat(np.arange(256), [len(normals) for normals in _NEIGHBOUR_CODE_TO_NORMALS])


def check_spacing(spacing: Sequence[float], ndim: int) -> Tuple[float, ...]:
    """``spacing`` as a tuple of positive finite floats, one per array axis."""
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise MedSegError(None, f'spacing {values} has {len(values)} values for a {ndim}D array')
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise MedSegError(None, f'spacing {values} must be positive and finite')
    return values


def contour_length_table(spacing: Sequence[float]) -> np.ndarray:
    """Contour length (mm) of each of the 16 2D neighbour codes (marching squares) for ``spacing``."""
    vertical, horizontal = check_spacing(spacing, 2)
    diag = 0.5 * math.hypot(vertical, horizontal)
    table = np.zeros(16)
    for code, length in ((0b0001, diag), (0b0010, diag), (0b0011, horizontal), (0b0100, diag),
                         (0b0101, vertical), (0b0110, 2 * diag), (0b0111, diag), (0b1000, diag),
                         (0b1001, 2 * diag), (0b1010, vertical), (0b1011, diag), (0b1100, horizontal),
                         (0b1101, diag), (0b1110, diag)):
        table[code] = length
    return table


def surface_area_table(spacing: Sequence[float]) -> np.ndarray:
    """Surfel area (mm^2) of each of the 256 3D neighbour codes (marching cubes) for ``spacing``."""
    s0, s1, s2 = check_spacing(spacing, 3)
    scale = np.array([s1 * s2, s0 * s2, s0 * s1])
    areas = np.linalg.norm(_NORMALS * scale, axis=1)
    return np.bincount(_NORMAL_CODES, weights=areas, minlength=256)


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances between a ground truth and a predicted mask.

    Each direction holds one distance (mm) per surfel, sorted ascending (ties by area), and the surfel's
    area (mm^2 in 3D, length in mm in 2D). An empty mask has no surfels; its direction is empty and the
    other direction's distances are ``inf`` (as in DeepMind's package). ``max_distance`` is the diagonal
    of the volume's physical extent, the penalty the empty-mask policy uses.
    """

    distances_gt_to_pred: np.ndarray
    distances_pred_to_gt: np.ndarray
    surfel_areas_gt: np.ndarray
    surfel_areas_pred: np.ndarray
    max_distance: float

    @property
    def empty(self) -> str:
        """The empty-mask category: '', 'both_empty', 'gt_empty' or 'pred_empty'."""
        return empty_category(self.surfel_areas_gt.size > 0, self.surfel_areas_pred.size > 0)


def empty_category(gt_present: bool, pred_present: bool) -> str:
    """The empty-mask flag for a class given whether ground truth and prediction contain it."""
    if gt_present and pred_present:
        return NOT_EMPTY
    if not gt_present and not pred_present:
        return BOTH_EMPTY
    return GT_EMPTY if not gt_present else PRED_EMPTY


def volume_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Diagonal (mm) of the physical extent of an array of ``shape`` at ``spacing``."""
    spacing = check_spacing(spacing, len(shape))
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def bounding_box(mask: np.ndarray) -> Optional[Tuple[slice, ...]]:
    """Tightest slices around the non-zero voxels of ``mask``, or ``None`` when it is empty.

    Each axis is found on the slab already restricted by the previous axes, so only the first projection
    reads the whole array.
    """
    box: list = []
    view = mask
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(view.any(axis=other) if other else view)
        if hits.size == 0:
            return None
        sl = slice(int(hits[0]), int(hits[-1]) + 1)
        box.append(sl)
        view = view[(slice(None),) * axis + (sl,)]
    return tuple(box)


def union_box(a: Optional[Tuple[slice, ...]], b: Optional[Tuple[slice, ...]]) -> Optional[Tuple[slice, ...]]:
    """The smallest box holding both boxes (either may be ``None`` for an empty mask)."""
    if a is None or b is None:
        return a if b is None else b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def _neighbour_codes(crop: np.ndarray) -> np.ndarray:
    """Neighbour code of every voxel corner of ``crop`` (shape ``crop.shape + 1``).

    Corner ``i`` sees voxels ``i - 1`` and ``i`` along each axis; voxels outside ``crop`` are background,
    which reproduces DeepMind's zero-padded ``ndimage.correlate`` with the same kernel.
    """
    kernel = _KERNEL_2D if crop.ndim == 2 else _KERNEL_3D
    padded = np.pad(crop.astype(np.uint8, copy=False), 1)
    out_shape = tuple(n + 1 for n in crop.shape)
    codes = np.zeros(out_shape, dtype=np.uint8)
    for offset in np.ndindex(*kernel.shape):
        window = tuple(slice(o, o + n) for o, n in zip(offset, out_shape))
        codes += padded[window] * kernel[offset]
    return codes


def _sorted(distances: np.ndarray, areas: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sort surfels by (distance, area), as DeepMind's ``_sort_distances_surfels``."""
    order = np.lexsort((areas, distances))
    return distances[order], areas[order]


def surface_distances_in_box(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float],
                             max_distance: float) -> SurfaceDistances:
    """Surface distances of two boolean masks already cropped to (at least) their union bounding box.

    ``max_distance`` is the diagonal of the *full* volume (the crop does not know it).
    """
    spacing = check_spacing(spacing, gt.ndim)
    table = contour_length_table(spacing) if gt.ndim == 2 else surface_area_table(spacing)
    full = 0b1111 if gt.ndim == 2 else 0b11111111
    codes_gt, codes_pred = _neighbour_codes(gt), _neighbour_codes(pred)
    border_gt = (codes_gt != 0) & (codes_gt != full)
    border_pred = (codes_pred != 0) & (codes_pred != full)
    areas_gt, areas_pred = table[codes_gt[border_gt]], table[codes_pred[border_pred]]
    if border_gt.any() and border_pred.any():
        dist_gt_to_pred = ndimage.distance_transform_edt(~border_pred, sampling=spacing)[border_gt]
        dist_pred_to_gt = ndimage.distance_transform_edt(~border_gt, sampling=spacing)[border_pred]
    else:
        dist_gt_to_pred = np.full(areas_gt.shape, np.inf)
        dist_pred_to_gt = np.full(areas_pred.shape, np.inf)
    dist_gt_to_pred, areas_gt = _sorted(dist_gt_to_pred, areas_gt)
    dist_pred_to_gt, areas_pred = _sorted(dist_pred_to_gt, areas_pred)
    return SurfaceDistances(dist_gt_to_pred, dist_pred_to_gt, areas_gt, areas_pred, float(max_distance))


def _check_masks(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise MedSegError(None, f'ground truth shape {gt.shape} differs from prediction shape {pred.shape}')
    if gt.ndim not in (2, 3):
        raise MedSegError(None, f'only 2D and 3D masks are supported, got shape {gt.shape}')


def surface_distances(gt: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Surface distances between boolean masks ``gt`` and ``pred`` (2D or 3D, same shape).

    Equivalent to DeepMind's ``compute_surface_distances(gt, pred, spacing)``, computed in the union
    bounding box plus a one-voxel margin (exact; see the module docstring).
    """
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    _check_masks(gt, pred)
    spacing = check_spacing(spacing, gt.ndim)
    diagonal = volume_diagonal(gt.shape, spacing)
    box = union_box(bounding_box(gt), bounding_box(pred))
    if box is None:
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty, empty, empty, diagonal)
    return surface_distances_in_box(gt[box], pred[box], spacing, diagonal)


def nsd(sd: SurfaceDistances, tolerance_mm: float) -> float:
    """Normalised surface Dice at ``tolerance_mm`` (DeepMind ``compute_surface_dice_at_tolerance``).

    The surfel area within ``tolerance_mm`` of the other surface (both directions) over the total surfel
    area of both surfaces. Empty masks: 1 when both are empty, 0 when only one is.
    """
    empty = sd.empty
    if empty:
        return 1.0 if empty == BOTH_EMPTY else 0.0
    overlap = (sd.surfel_areas_gt[sd.distances_gt_to_pred <= tolerance_mm].sum()
               + sd.surfel_areas_pred[sd.distances_pred_to_gt <= tolerance_mm].sum())
    return float(overlap / (sd.surfel_areas_gt.sum() + sd.surfel_areas_pred.sum()))


def _percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """Area-weighted percentile of sorted distances, as in DeepMind ``compute_robust_hausdorff``."""
    cumulative = np.cumsum(areas) / np.sum(areas)
    idx = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[min(idx, len(distances) - 1)])


def robust_hausdorff(sd: SurfaceDistances, percent: float) -> float:
    """Max of the two directed area-weighted ``percent``-th percentile distances (mm).

    DeepMind ``compute_robust_hausdorff``. Empty masks: 0 when both are empty, ``sd.max_distance`` when
    only one is.
    """
    empty = sd.empty
    if empty:
        return 0.0 if empty == BOTH_EMPTY else sd.max_distance
    return max(_percentile(sd.distances_gt_to_pred, sd.surfel_areas_gt, percent),
               _percentile(sd.distances_pred_to_gt, sd.surfel_areas_pred, percent))


def hd95(sd: SurfaceDistances) -> float:
    """95th-percentile Hausdorff distance (mm): ``robust_hausdorff(sd, 95)``."""
    return robust_hausdorff(sd, 95.0)


def average_surface_distance(sd: SurfaceDistances) -> Tuple[float, float]:
    """Area-weighted mean distance gt->pred and pred->gt (mm), DeepMind ``compute_average_surface_distance``.

    Empty masks: (0, 0) when both are empty, ``(sd.max_distance,) * 2`` when only one is.
    """
    empty = sd.empty
    if empty:
        value = 0.0 if empty == BOTH_EMPTY else sd.max_distance
        return value, value
    return (float(np.sum(sd.distances_gt_to_pred * sd.surfel_areas_gt) / np.sum(sd.surfel_areas_gt)),
            float(np.sum(sd.distances_pred_to_gt * sd.surfel_areas_pred) / np.sum(sd.surfel_areas_pred)))


def assd(sd: SurfaceDistances) -> float:
    """Average symmetric surface distance (mm): area-weighted mean over both directed distance sets.

    ``ASSD = (sum_g d(g, P) a_g + sum_p d(p, G) a_p) / (sum_g a_g + sum_p a_p)`` over ground truth
    surfels ``g`` and predicted surfels ``p`` with areas ``a``: the two directed averages of
    :func:`average_surface_distance` weighted by their surface areas (not their plain mean). Empty
    masks: 0 when both are empty, ``sd.max_distance`` when only one is.
    """
    empty = sd.empty
    if empty:
        return 0.0 if empty == BOTH_EMPTY else sd.max_distance
    total = (np.sum(sd.distances_gt_to_pred * sd.surfel_areas_gt)
             + np.sum(sd.distances_pred_to_gt * sd.surfel_areas_pred))
    return float(total / (np.sum(sd.surfel_areas_gt) + np.sum(sd.surfel_areas_pred)))
