"""ClassDiceLoss: per-class batch soft Dice that a tiny foreground cannot hide behind the background."""
from __future__ import annotations

import pytest

torch = pytest.importorskip('torch')

from mmseg.registry import MODELS  # noqa: E402

from mmseg_medical.models import ClassDiceLoss  # noqa: E402


def _target(size: int = 32, fg: int = 3) -> torch.Tensor:
    target = torch.zeros(2, size, size, dtype=torch.long)
    target[0, :fg, :fg] = 1  # 9 of 2048 pixels (0.4%) foreground
    return target


def _logits(target: torch.Tensor, num_classes: int = 2, strength: float = 20.0) -> torch.Tensor:
    onehot = torch.nn.functional.one_hot(target, num_classes).permute(0, 3, 1, 2).float()
    return strength * (2 * onehot - 1)


def test_registered_in_mmseg_models() -> None:
    loss = MODELS.build(dict(type='ClassDiceLoss', loss_weight=3.0))
    assert isinstance(loss, ClassDiceLoss) and loss.loss_name == 'loss_dice'


def test_perfect_prediction_is_near_zero_and_all_background_is_near_one() -> None:
    target = _target()
    loss = ClassDiceLoss(smooth=0.0)
    assert loss(_logits(target), target).item() == pytest.approx(0.0, abs=1e-6)
    all_background = _logits(torch.zeros_like(target))
    # The foreground class gets Dice 0, although 99.6% of the pixels are right.
    assert loss(all_background, target).item() == pytest.approx(1.0, abs=1e-6)


def test_mmseg_dice_loss_hides_the_same_failure() -> None:
    """Why this loss exists: mmseg's DiceLoss pools background in and scores the empty prediction ~0."""
    target = _target()
    mmseg_dice = MODELS.build(dict(type='DiceLoss', use_sigmoid=False))
    empty = _logits(torch.zeros_like(target))
    assert mmseg_dice(empty, target).item() < 0.05
    assert ClassDiceLoss()(empty, target).item() > 0.85  # 1 - (0 + smooth) / (9 + smooth)


def test_ignore_index_pixels_do_not_count() -> None:
    target = _target()
    logits = _logits(target)
    noisy_target = target.clone()
    noisy_target[1, 10:20, 10:20] = 255
    logits[1, :, 10:20, 10:20] = torch.tensor([-20.0, 20.0]).view(2, 1, 1)  # wrong, but ignored
    assert ClassDiceLoss(smooth=0.0)(logits, noisy_target, ignore_index=255).item() == pytest.approx(0.0, abs=1e-6)


def test_sigmoid_single_channel_head() -> None:
    target = _target()
    logit = 20.0 * (2 * target.float() - 1).unsqueeze(1)
    loss = ClassDiceLoss(smooth=0.0)
    assert loss(logit, target).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(-logit.abs(), target).item() == pytest.approx(1.0, abs=1e-6)


def test_gradient_pushes_foreground_up() -> None:
    target = _target()
    logits = torch.zeros(2, 2, 32, 32, requires_grad=True)
    ClassDiceLoss(loss_weight=3.0)(logits, target).backward()
    fg_grad = logits.grad[0, 1, :3, :3]
    assert (fg_grad < 0).all()  # descending raises the foreground logit on foreground pixels


def test_batch_without_foreground_gives_no_dice_signal() -> None:
    """Rewarding "predict nothing" on the many hemorrhage-free batches is what kept the model blank."""
    target = torch.zeros(2, 32, 32, dtype=torch.long)
    logits = torch.zeros(2, 2, 32, 32, requires_grad=True)
    loss = ClassDiceLoss(loss_weight=3.0)(logits, target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(logits.grad) == 0
