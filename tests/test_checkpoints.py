"""CheckpointFitHook / check_fits: the one line a checkpoint that does not fit the model gives, and that a
Runner stops before a weight is copied or a batch is scored (a toy mmengine Runner, no mim)."""
from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmseg_medical.checkpoints import ADVICE, CheckpointFitHook, check_fits, checkpoint_state, misfits
from mmseg_medical.errors import MedSegError


def test_misfits_lists_other_shapes_and_missing_entries_in_the_model_order():
    model = OrderedDict(a=torch.zeros(2, 3), b=torch.zeros(4), c=torch.zeros(1), d=torch.zeros(5, 5))
    ckpt = {'d': torch.zeros(5, 4), 'a': torch.zeros(2, 3), 'b': torch.zeros(3), 'extra': torch.zeros(9)}
    assert misfits(model, ckpt) == ([('b', [3], [4]), ('d', [5, 4], [5, 5])], ['c'])
    assert misfits(model, dict(model)) == ([], [])


def test_checkpoint_state_reads_as_mmengine_does():
    w = torch.ones(1)
    assert checkpoint_state({'state_dict': {'module.x.weight': w}, 'meta': {}}) == {'x.weight': w}
    assert checkpoint_state({'x.module.y': w}) == {'x.module.y': w}   # only a leading 'module.' goes


def test_check_fits_one_line_names_the_first_entry_and_both_shapes():
    narrow, wide = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), nn.Sequential(nn.Conv2d(3, 16, 3),
                                                                                        nn.BatchNorm2d(16))
    check_fits(wide, {'state_dict': wide.state_dict()}, 'w.pth')           # fits: nothing raised
    with pytest.raises(MedSegError) as err:
        check_fits(wide, {'state_dict': narrow.state_dict()}, 'n.pth')
    # conv weight, conv bias, bn weight, bias, running mean, running var differ; num_batches_tracked is a scalar
    assert str(err.value) == (f'n.pth: {ADVICE}: 0.weight is [8, 3, 3, 3] in the checkpoint, [16, 3, 3, 3] in '
                              "the model (6 of the model's 7 entries differ)")
    assert 'pass the --cfg-options it was trained with' in str(err.value) and '\n' not in str(err.value)


def test_check_fits_missing_entry_and_a_single_difference():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1))
    state = model.state_dict()
    with pytest.raises(MedSegError, match=r"^c\.pth: .*: 1\.weight is not in the checkpoint \(2 of the model's 4 "):
        check_fits(model, {k: v for k, v in state.items() if not k.startswith('1.')}, 'c.pth')
    one = dict(state, **{'1.bias': torch.zeros(3)})
    with pytest.raises(MedSegError) as err:
        check_fits(model, one, 'c.pth')
    assert str(err.value).endswith('1.bias is [3] in the checkpoint, [2] in the model')


def test_extra_checkpoint_entries_fit():
    """An entry only the checkpoint has (e.g. an auxiliary head the config drops) is left to mmengine."""
    model = nn.Conv2d(3, 4, 1)
    check_fits(model, dict(model.state_dict(), **{'auxiliary_head.w': torch.zeros(7)}), 'x.pth')


class _Toy(BaseModel):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 1)
        self.forwards = 0

    def forward(self, *images, mode='tensor'):   # batch_size 1 + pseudo_collate: one (1, 2, 2) image
        self.forwards += 1
        return [self.conv(image[None]).sum() for image in images]


class _Count(BaseMetric):
    def process(self, data_batch, data_samples) -> None:
        self.results.append(1)

    def compute_metrics(self, results) -> dict:
        return {'n': len(results)}


def _runner(tmp_path, width: int, checkpoint, name: str) -> Runner:
    return Runner(model=_Toy(width), work_dir=str(tmp_path / name), experiment_name=name,
                  test_dataloader=dict(dataset=[torch.zeros(1, 2, 2)] * 3, batch_size=1,
                                       collate_fn=dict(type='pseudo_collate'),
                                       sampler=dict(type='DefaultSampler', shuffle=False)),
                  test_cfg=dict(), test_evaluator=_Count(), load_from=str(checkpoint),
                  custom_hooks=[CheckpointFitHook()], default_hooks=dict(), env_cfg=dict(dist_cfg=dict(backend='gloo')))


def test_runner_stops_before_copying_a_weight_or_scoring(tmp_path, capfd):
    trained = _Toy(4)
    ckpt = tmp_path / 'toy.pth'
    torch.save({'state_dict': trained.state_dict(), 'meta': {}}, ckpt)

    runner = _runner(tmp_path, 8, ckpt, 'wide')
    before = copy.deepcopy(runner.model.state_dict())
    capfd.readouterr()
    with pytest.raises(SystemExit) as stop:
        runner.test()
    assert stop.value.code == 1
    err = capfd.readouterr().err
    assert err.splitlines() == [f'error: {ckpt}: {ADVICE}: conv.weight is [4, 1, 1, 1] in the checkpoint, '
                                "[8, 1, 1, 1] in the model (2 of the model's 2 entries differ)"]
    assert runner.model.forwards == 0
    assert all(torch.equal(before[k], v) for k, v in runner.model.state_dict().items())

    runner = _runner(tmp_path, 4, ckpt, 'same')               # the same width: loaded and scored
    assert runner.test() == {'n': 3}
    assert runner.model.forwards == 3
    assert torch.equal(runner.model.conv.weight, trained.conv.weight)


def test_readme_line_is_what_the_shipped_config_says_of_a_tiny_checkpoint(repo_root):
    """The README's example: a UNet of 16 base channels (the CPU-sized line) given to the shipped Cranium config
    (64): the line is check_fits' for those two models, word for word."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(repo_root / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py')
    shipped = MODELS.build(cfg.model)
    cfg.merge_from_dict({'model.backbone.base_channels': 16, 'model.decode_head.in_channels': 16,
                         'model.decode_head.channels': 16})
    tiny = MODELS.build(cfg.model)
    [line] = [ln for ln in (repo_root / 'README.md').read_text().splitlines()
              if ln.startswith('error: work_dirs/tiny/iter_300.pth: ')]
    with pytest.raises(MedSegError) as err:
        check_fits(shipped, {'state_dict': tiny.state_dict()}, 'work_dirs/tiny/iter_300.pth')
    assert line == f'error: {err.value}'
