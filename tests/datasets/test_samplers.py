"""ForegroundOversamplingSampler on a prepared synthetic Cranium dataset."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATA_SAMPLERS, DATASETS

from mmseg_medical.datasets import ForegroundOversamplingSampler, foreground_indices


@pytest.fixture(scope='module')
def dataset(cranium_data):
    init_default_scope('mmseg')
    return DATASETS.build(dict(type='CraniumDataset', data_root=str(cranium_data),
                               ann_file='splits/train.txt', data_prefix=dict(img_path='images/', seg_map_path='masks/'),
                               pipeline=[]))


def _has_foreground(dataset, index: int) -> bool:
    return bool((cv2.imread(dataset.get_data_info(index)['seg_map_path'], cv2.IMREAD_UNCHANGED) > 0).any())


def test_foreground_indices_match_the_masks(dataset):
    found = foreground_indices(dataset)
    expected = [i for i in range(len(dataset)) if _has_foreground(dataset, i)]
    assert found == expected
    assert 0 < len(found) < len(dataset)  # the phantom has slices with and without hemorrhage


def test_draws_hit_foreground_at_the_requested_rate(dataset):
    sampler = DATA_SAMPLERS.build(dict(type='ForegroundOversamplingSampler', dataset=dataset, fg_fraction=0.5,
                                       seed=3))
    assert isinstance(sampler, ForegroundOversamplingSampler)
    draws = list(itertools.islice(iter(sampler), 20000))
    assert min(draws) >= 0 and max(draws) < len(dataset)
    base_rate = len(sampler.foreground) / len(dataset)
    fg_rate = np.isin(draws, sampler.foreground).mean()
    assert fg_rate == pytest.approx(0.5 + 0.5 * base_rate, abs=0.02)
    assert len(set(draws)) == len(dataset)  # background slices are still drawn


def test_zero_fraction_is_uniform_and_seed_is_deterministic(dataset):
    draws = list(itertools.islice(iter(ForegroundOversamplingSampler(dataset, fg_fraction=0.0, seed=1)), 20000))
    counts = np.bincount(draws, minlength=len(dataset))
    assert counts.min() > 0.8 * 20000 / len(dataset) and counts.max() < 1.2 * 20000 / len(dataset)
    again = list(itertools.islice(iter(ForegroundOversamplingSampler(dataset, fg_fraction=0.0, seed=1)), 20000))
    assert draws == again


def test_ranks_take_disjoint_positions_of_one_stream(dataset, monkeypatch):
    import mmengine.dataset.sampler as sampler_module

    streams = []
    for rank in (0, 1):
        monkeypatch.setattr(sampler_module, 'get_dist_info', lambda rank=rank: (rank, 2))
        streams.append(list(itertools.islice(iter(ForegroundOversamplingSampler(dataset, seed=5)), 100)))
    monkeypatch.setattr(sampler_module, 'get_dist_info', lambda: (0, 1))
    single = list(itertools.islice(iter(ForegroundOversamplingSampler(dataset, seed=5)), 200))
    assert streams[0] == single[0::2] and streams[1] == single[1::2]


def test_bad_fraction_is_rejected(dataset):
    with pytest.raises(ValueError, match='fg_fraction'):
        ForegroundOversamplingSampler(dataset, fg_fraction=1.5)


def test_recorded_counts_are_used_and_agree_with_the_masks(dataset, monkeypatch):
    """The converter's per-slice counts stand in for mask reads; they must say what the masks say."""
    from mmseg_medical.datasets import samplers
    expected = [i for i in range(len(dataset)) if _has_foreground(dataset, i)]
    monkeypatch.setattr(samplers, 'read_mask_png', lambda path: pytest.fail(f'mask read: {path}'))
    assert foreground_indices(dataset) == expected
