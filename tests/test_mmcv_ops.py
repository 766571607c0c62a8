"""The pure-PyTorch ``mmcv.ops`` stand-in, against hand-computed values and the focal-loss formula.

Where mmcv's compiled ops are installed (``make install-full``) the stand-in is also compared with them.
"""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from mmseg_medical import mmcv_ops
from mmseg_medical.mmcv_ops import point_sample, sigmoid_focal_loss

# A 2×3 image (one channel): value = 10 * row + col, so bilinear values are easy to write down.
IMG = torch.tensor([[[[0., 1., 2.], [10., 11., 12.]]]])


@pytest.mark.parametrize('points, expected', [
    # align_corners=True: (x, y) in [0, 1] maps to pixel centre (x * (W-1), y * (H-1)).
    ([(0.0, 0.0)], [0.0]),                      # top-left pixel centre
    ([(1.0, 1.0)], [12.0]),                     # bottom-right pixel centre
    ([(0.5, 0.5)], [6.0]),                      # col 1, row 0.5: (1 + 11) / 2
    ([(0.25, 0.0), (1.0, 0.5)], [0.5, 7.0]),    # col 0.5 row 0; col 2 row 0.5: (2 + 12) / 2
])
def test_point_sample_align_corners_true(points, expected):
    out = point_sample(IMG, torch.tensor([points]), align_corners=True)
    assert out.shape == (1, 1, len(points))
    assert torch.allclose(out[0, 0], torch.tensor(expected), atol=1e-6)


@pytest.mark.parametrize('points, expected', [
    # align_corners=False: (x, y) maps to pixel coordinate (x * W - 0.5, y * H - 0.5), zero padding outside.
    ([(1 / 6, 0.25)], [0.0]),                   # centre of pixel (0, 0)
    ([(0.5, 0.5)], [6.0]),                      # col 1, row 0.5
    ([(5 / 6, 0.75)], [12.0]),                  # centre of pixel (1, 2)
    ([(0.0, 0.75)], [10.0 * 0.5]),              # col -0.5 on the last row: half zero padding, half 10
    ([(1.0, 0.75)], [12.0 * 0.5]),              # col 2.5 on the last row: half 12, half zero padding
    ([(0.5, 1.0)], [11.0 * 0.5]),               # row 1.5: half 11, half zero padding
])
def test_point_sample_align_corners_false(points, expected):
    out = point_sample(IMG, torch.tensor([points]), align_corners=False)
    assert torch.allclose(out[0, 0], torch.tensor(expected), atol=1e-6)


def test_point_sample_grid_shape_and_channels():
    img = torch.cat([IMG, -IMG], dim=1)                          # 2 channels
    grid = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]], [[0.5, 0.5], [0.5, 0.0]]]])  # (1, 2, 2, 2)
    out = point_sample(img, grid, align_corners=True)
    assert out.shape == (1, 2, 2, 2)
    assert torch.allclose(out[0, 0], torch.tensor([[0.0, 12.0], [6.0, 1.0]]))
    assert torch.allclose(out[0, 1], -out[0, 0])


def _focal_by_formula(x, t, gamma, alpha, weight=None):
    """Lin et al.'s sigmoid focal loss written out element by element (mmcv's kernel convention)."""
    n, c = x.shape
    out = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        for j in range(c):
            p = 1 / (1 + math.exp(-float(x[i, j])))
            if int(t[i]) == j:
                v = -alpha * (1 - p) ** gamma * math.log(p)
            else:
                v = -(1 - alpha) * p ** gamma * math.log(1 - p)
            if weight is not None and int(t[i]) < c:
                v *= float(weight[int(t[i])])
            out[i, j] = v
    return out


@pytest.mark.parametrize('gamma, alpha', [(2.0, 0.25), (0.0, 0.5), (1.5, 0.75)])
def test_sigmoid_focal_loss_matches_formula(gamma, alpha):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 4, generator=g, dtype=torch.float64) * 3
    t = torch.tensor([0, 1, 2, 3, 4, 4, 1])                       # 4 = no class (all negatives)
    ref = _focal_by_formula(x, t, gamma, alpha)
    none = sigmoid_focal_loss(x, t, gamma, alpha, None, 'none')
    assert none.shape == (7, 4)
    assert torch.allclose(none, ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(sigmoid_focal_loss(x, t, gamma, alpha, None, 'sum'), ref.sum())
    assert torch.allclose(sigmoid_focal_loss(x, t, gamma, alpha), ref.sum() / 7)   # mmcv: sum / N


def test_sigmoid_focal_loss_weight_and_gamma0_is_weighted_bce():
    x = torch.tensor([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5]], dtype=torch.float64)
    t = torch.tensor([2, 0])
    w = torch.tensor([2.0, 3.0, 0.5], dtype=torch.float64)
    ref = _focal_by_formula(x, t, 2.0, 0.25, w)
    assert torch.allclose(sigmoid_focal_loss(x, t, 2.0, 0.25, w, 'none'), ref)
    # gamma = 0, alpha = 0.5: half the binary cross-entropy against the one-hot target.
    onehot = torch.nn.functional.one_hot(t, 3).double()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, onehot, reduction='none')
    assert torch.allclose(sigmoid_focal_loss(x, t, 0.0, 0.5, None, 'none'), 0.5 * bce)


def test_sigmoid_focal_loss_gradient_matches_mmcv_backward_formula():
    """mmcv's CUDA backward: -alpha (1-p)^g (1 - p - g p log p) for the target column,
    -(1-alpha) p^g (g (1-p) log(1-p) - p) for the others; mean reduction divides by N."""
    x = torch.tensor([[0.7, -0.4], [-2.0, 1.3], [0.1, 0.2]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2])
    gamma, alpha = 2.0, 0.25
    sigmoid_focal_loss(x, t, gamma, alpha, None, 'mean').backward()
    p = torch.sigmoid(x.detach())
    pos = torch.nn.functional.one_hot(t, 3)[:, :2].double()
    grad_p = -alpha * (1 - p) ** gamma * (1 - p - gamma * p * torch.log(p))
    grad_n = -(1 - alpha) * p ** gamma * (gamma * (1 - p) * torch.log(1 - p) - p)
    expected = (pos * grad_p + (1 - pos) * grad_n) / 3
    assert torch.allclose(x.grad, expected, rtol=1e-10)


def test_sigmoid_focal_loss_bad_arguments():
    x = torch.zeros(2, 3)
    with pytest.raises(TypeError, match='torch.long'):
        sigmoid_focal_loss(x, torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match='reduction'):
        sigmoid_focal_loss(x, torch.zeros(2, dtype=torch.long), reduction='avg')
    with pytest.raises(ValueError, match=r'weight must be \(3,\)'):
        sigmoid_focal_loss(x, torch.zeros(2, dtype=torch.long), weight=torch.ones(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device on this machine')
def test_sigmoid_focal_loss_on_cuda():
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 3, 1])
    assert torch.allclose(sigmoid_focal_loss(x.cuda(), t.cuda(), 2.0, 0.25, None, 'none').cpu(),
                          _focal_by_formula(x, t, 2.0, 0.25))


@pytest.mark.skipif(mmcv_ops.compiled_ops_available(), reason="mmcv's compiled ops are installed: no stand-in")
def test_stand_in_is_what_mmseg_imports():
    import mmcv.ops
    from mmseg.models.losses import focal_loss
    from mmseg.models.utils import point_sample as mmseg_point_sample

    assert mmcv.ops is mmcv_ops.LITE_OPS
    assert mmseg_point_sample.point_sample is point_sample
    assert focal_loss._sigmoid_focal_loss is sigmoid_focal_loss


@pytest.mark.skipif(mmcv_ops.compiled_ops_available(), reason="mmcv's compiled ops are installed: no stand-in")
def test_unsupported_op_gives_a_clear_error():
    import mmcv.ops

    with pytest.raises(ModuleNotFoundError, match=r'mmcv\.ops\.CrissCrossAttention .*CCNet.*make install-full'):
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match=r'mmcv\.ops\.deform_conv .*make install-full'):
        import mmcv.ops.deform_conv  # noqa: F401
    assert not hasattr(mmcv.ops, '__wrapped__')   # private probes stay AttributeError (hasattr works)
    # mmseg's guarded imports fall back as upstream intends, so CCHead says what it needs when built.
    from mmseg.models.decode_heads import cc_head, psa_head
    assert cc_head.CrissCrossAttention is None and psa_head.PSAMask is None


@pytest.mark.skipif(mmcv_ops.compiled_ops_available(), reason="mmcv's compiled ops are installed: no stand-in")
def test_mmseg_models_imported_first_fails_with_mmcvs_message():
    """Documented in the README: without `import mmseg_medical` first, mmcv-lite cannot import mmseg.models."""
    proc = subprocess.run([sys.executable, '-c', 'import mmseg.models'], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "No module named 'mmcv._ext'" in proc.stderr
    proc = subprocess.run([sys.executable, '-c', 'import mmseg_medical, mmseg.models'], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not mmcv_ops.compiled_ops_available(), reason="mmcv's compiled ops are not installed "
                    '(default mmcv-lite set-up; `make install-full` builds them)')
def test_compiled_ops_are_left_alone_and_agree():
    import mmcv.ops

    assert mmcv.ops is not mmcv_ops.LITE_OPS and not mmcv_ops.install()
    g = torch.Generator().manual_seed(1)
    img, pts = torch.randn(2, 3, 5, 7, generator=g), torch.rand(2, 11, 2, generator=g)
    for ac in (True, False):
        assert torch.allclose(mmcv.ops.point_sample(img, pts, align_corners=ac), point_sample(img, pts, ac))
    x, t = torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 3, 0, 2])
    if torch.cuda.is_available():  # mmcv's sigmoid_focal_loss kernel exists for CUDA (and MLU/NPU) only
        ref = mmcv.ops.sigmoid_focal_loss(x.cuda(), t.cuda(), 2.0, 0.25, None, 'none').cpu()
        assert torch.allclose(ref, sigmoid_focal_loss(x, t, 2.0, 0.25, None, 'none'), atol=1e-6)
