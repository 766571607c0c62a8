"""Pure-PyTorch ``mmcv.ops`` for an mmcv-lite install (no compiled extension).

mmseg 1.2.2 imports two names from ``mmcv.ops`` when ``mmseg.models`` is imported: ``point_sample``
(PointRend / SAN / mask classification utilities) and ``sigmoid_focal_loss`` (FocalLoss on CUDA tensors).
mmcv-lite ships ``mmcv/ops/*.py`` but not the compiled ``mmcv._ext`` they load, so ``import mmseg.models``
fails with ``No module named 'mmcv._ext'``. :func:`install` (called by ``import mmseg_medical``) puts a
small module in ``sys.modules['mmcv.ops']`` that provides those two names with mmcv 2.1.0's signatures and
semantics, and answers every other name with a ``ModuleNotFoundError`` that names the op, the models that
need it and the command that builds the compiled ops; mmseg's own guarded imports
(``try: from mmcv.ops import CrissCrossAttention except ModuleNotFoundError``) therefore keep working.
When mmcv's compiled extension is installed (``make install-full``), nothing is replaced.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import math
import sys
import types
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

FULL_INSTALL = 'make install-full   (builds mmcv==2.1.0 with its compiled ops, ~25 min on 2 cores)'

#: Which models need an mmcv op that mmcv-lite does not have (for the error message).
OP_USERS = {
    'CrissCrossAttention': 'CCNet (CCHead)',
    'PSAMask': 'PSANet (PSAHead)',
    'DeformConv2d': 'deformable-convolution backbones (DCN)',
    'DeformConv2dPack': 'deformable-convolution backbones (DCN)',
    'ModulatedDeformConv2d': 'modulated deformable convolutions (DCNv2)',
    'ModulatedDeformConv2dPack': 'modulated deformable convolutions (DCNv2)',
    'MultiScaleDeformableAttention': 'Mask2Former / Deformable DETR pixel decoders (mmdet)',
    'CARAFEPack': 'CARAFE upsampling',
    'SyncBatchNorm': "mmcv's SyncBatchNorm (use torch's SyncBN instead)",
    'nms': 'detection post-processing (mmdet)',
    'RoIAlign': 'two-stage detectors (mmdet)',
}


def _normalize(points: Tensor) -> Tensor:
    """[0, 1] image coordinates -> grid_sample's [-1, 1]."""
    return points * 2.0 - 1.0


def point_sample(input: Tensor, points: Tensor, align_corners: bool = False, **kwargs) -> Tensor:
    """Bilinear features of ``input`` (N, C, H, W) at ``points`` in [0, 1] x [0, 1] (x, y).

    ``points`` is (N, P, 2) -> output (N, C, P), or (N, Hg, Wg, 2) -> (N, C, Hg, Wg); extra keyword
    arguments go to :func:`torch.nn.functional.grid_sample` (mmcv.ops.point_sample's contract).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(input, _normalize(points), align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


_LOG_FLT_MIN = math.log(torch.finfo(torch.float32).tiny)  # mmcv clamps p and 1 - p at FLT_MIN before log
_REDUCTIONS = ('none', 'mean', 'sum')


def sigmoid_focal_loss(input: Tensor, target: Tensor, gamma: float = 2.0, alpha: float = 0.25,
                       weight: Optional[Tensor] = None, reduction: str = 'mean') -> Tensor:
    """mmcv's ``sigmoid_focal_loss`` (Lin et al. 2017) in PyTorch, on any device, differentiable.

    ``input`` (N, C) logits, ``target`` (N,) long class indices in [0, C] (C = no class: every column is
    a negative). Element (n, c): ``-alpha (1-p)^gamma log p`` if ``target[n] == c`` else
    ``-(1-alpha) p^gamma log(1-p)`` with ``p = sigmoid(input[n, c])``, times ``weight[target[n]]`` when a
    per-class ``weight`` (C,) is given (rows with target C stay unweighted). ``reduction``: 'none' gives
    the (N, C) matrix, 'sum' its sum and 'mean' its sum divided by N (not by N*C), as mmcv does.
    """
    if target.dtype != torch.long:
        raise TypeError(f'sigmoid_focal_loss: target must be torch.long, got {target.dtype}')
    if input.dim() != 2 or target.dim() != 1 or input.size(0) != target.size(0):
        raise ValueError(f'sigmoid_focal_loss: expected input (N, C) and target (N,), got '
                         f'{tuple(input.shape)} and {tuple(target.shape)}')
    if reduction not in _REDUCTIONS:
        raise ValueError(f'sigmoid_focal_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}')
    num_classes = input.size(1)
    positive = F.one_hot(target.clamp(0, num_classes), num_classes + 1)[:, :num_classes].to(input.dtype)
    log_p = F.logsigmoid(input).clamp(min=_LOG_FLT_MIN)
    log_not_p = F.logsigmoid(-input).clamp(min=_LOG_FLT_MIN)
    p = torch.sigmoid(input)
    loss = -(positive * alpha * (1 - p).pow(gamma) * log_p
             + (1 - positive) * (1 - alpha) * p.pow(gamma) * log_not_p)
    if weight is not None:
        if weight.dim() != 1 or weight.size(0) != num_classes:
            raise ValueError(f'sigmoid_focal_loss: weight must be ({num_classes},), got {tuple(weight.shape)}')
        padded = torch.cat([weight.to(input.dtype), weight.new_ones(1, dtype=input.dtype)])
        loss = loss * padded[target.clamp(0, num_classes)].unsqueeze(1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


def missing_op_error(name: str) -> ModuleNotFoundError:
    """The error for an ``mmcv.ops`` name that needs mmcv's compiled extension."""
    users = OP_USERS.get(name, 'models that use compiled mmcv ops')
    return ModuleNotFoundError(
        f"mmcv.ops.{name} needs mmcv's compiled ops, which mmcv-lite does not have (used by {users}). "
        f'Install them with: {FULL_INSTALL}', name=f'mmcv.ops.{name}')


class _LiteOps(types.ModuleType):
    """``sys.modules['mmcv.ops']`` when mmcv's compiled extension is absent."""

    def __getattr__(self, name: str):
        if name.startswith('_'):  # dunder / private probes (hasattr, pickle, inspect) stay AttributeError
            raise AttributeError(name)
        raise missing_op_error(name)


class _SubmoduleGuard(importlib.abc.MetaPathFinder):
    """``import mmcv.ops.<module>`` gives the same clear error instead of mmcv's ``No module named 'mmcv._ext'``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith('mmcv.ops.') and sys.modules.get('mmcv.ops') is LITE_OPS:
            raise missing_op_error(fullname[len('mmcv.ops.'):])
        return None


LITE_OPS = _LiteOps('mmcv.ops', __doc__)
LITE_OPS.point_sample = point_sample
LITE_OPS.sigmoid_focal_loss = sigmoid_focal_loss
LITE_OPS.__all__ = ['point_sample', 'sigmoid_focal_loss']
LITE_OPS.__file__ = __file__
LITE_OPS.__path__ = []  # a package, so `import mmcv.ops.x` reaches _SubmoduleGuard


def compiled_ops_available() -> bool:
    """True when mmcv's compiled extension (``mmcv._ext``, from ``make install-full``) is installed."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):  # no mmcv at all
        return False


def install() -> bool:
    """Provide the pure-PyTorch ``mmcv.ops`` if mmcv is installed without its compiled ops.

    Returns True if the stand-in is (now) active. Does nothing when the compiled ops exist, when mmcv
    is not installed, or when a working ``mmcv.ops`` was already imported.
    """
    if sys.modules.get('mmcv.ops') is LITE_OPS:
        return True
    if importlib.util.find_spec('mmcv') is None or compiled_ops_available() or 'mmcv.ops' in sys.modules:
        return False
    import mmcv

    sys.modules['mmcv.ops'] = LITE_OPS
    mmcv.ops = LITE_OPS
    # mmcv.cnn.bricks.transformer warns at import that mmcv-lite has no MultiScaleDeformableAttention; using
    # it still raises missing_op_error, so the warning at every `import mmseg.models` says nothing new.
    warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    if not any(isinstance(f, _SubmoduleGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, _SubmoduleGuard())
    return True
