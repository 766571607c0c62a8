"""Losses for small, rare structures."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


@MODELS.register_module()
class ClassDiceLoss(nn.Module):
    """Soft Dice computed per class over the whole batch, averaged over the classes (background excluded).

    mmseg's ``DiceLoss`` flattens all classes of a sample into one vector, so on a 0.1%-foreground
    dataset the background term dominates and the loss stays near 0 while the model predicts nothing.
    Here each class counts equally, which is what class-imbalance handling needs (nnU-Net's batch Dice).
    Only classes present in the batch's target count: on a batch of slices without hemorrhage the Dice of
    "predict nothing" would be rewarded, and most batches of a rare-lesion dataset have none.

    Args:
        exclude_background: leave class 0 out of the mean.
        smooth: added to numerator and denominator (keeps empty classes finite).
        loss_weight: multiplier of the loss.
        ignore_index: label value that contributes nothing (mmseg's decode heads pass their own per call).
        loss_name: name in the logs; must start with ``loss_``.
    """

    def __init__(self, exclude_background: bool = True, smooth: float = 1.0, loss_weight: float = 1.0,
                 ignore_index: int = 255, loss_name: str = 'loss_dice') -> None:
        super().__init__()
        self.exclude_background = exclude_background
        self.smooth = smooth
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self._loss_name = loss_name

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight=None, ignore_index: Optional[int] = None,
                **kwargs) -> torch.Tensor:
        if ignore_index is None:
            ignore_index = self.ignore_index
        if pred.shape[1] == 1:  # sigmoid head: [background, foreground] probabilities
            fg = pred.sigmoid()
            probs = torch.cat([1 - fg, fg], dim=1)
        else:
            probs = pred.softmax(dim=1)
        num_classes = probs.shape[1]
        valid = (target != ignore_index).unsqueeze(1).to(probs.dtype)
        onehot = F.one_hot(target.clamp(0, num_classes - 1).long(), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
        probs, onehot = probs * valid, onehot * valid
        inter = (probs * onehot).sum(dim=(0, 2, 3))
        target_pixels = onehot.sum(dim=(0, 2, 3))
        dice = (2 * inter + self.smooth) / (probs.sum(dim=(0, 2, 3)) + target_pixels + self.smooth)
        present = target_pixels > 0
        if self.exclude_background and num_classes > 1:
            dice, present = dice[1:], present[1:]
        if not present.any():  # nothing to find in this batch: no Dice signal (CE handles false positives)
            return probs.sum() * 0.0
        return self.loss_weight * (1 - dice[present].mean())

    @property
    def loss_name(self) -> str:
        return self._loss_name
