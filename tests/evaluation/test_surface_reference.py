"""The project's metrics against DeepMind ``surface-distance`` 0.1 values stored in
``data/surface_distance_reference.json`` (written by ``tools/benchmarks/surface_distance_reference.py``;
provenance inside). The label maps are stored with the values; one test checks that the generator still makes
those arrays, and one recomputes every stored value with surface-distance (a required test extra on CI).

Where surface-distance has no finite value (one or both masks empty: ``inf`` / ``nan``) the project applies
its documented empty-mask policy instead; those values are checked by hand (volume diagonal, 0, 1).
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from mmseg_medical.evaluation import (BOTH_EMPTY, assd, average_surface_distance, case_metrics, hd95, nsd,
                                      robust_hausdorff, surface_distances)

DATA = Path(__file__).parent / 'data' / 'surface_distance_reference.json'
REFERENCE = json.loads(DATA.read_text())
CASES = {case['name']: case for case in REFERENCE['cases']}
TOL = dict(rel=1e-9, abs=1e-12)


def decode(entry: dict) -> np.ndarray:
    data = zlib.decompress(base64.b64decode(entry['zlib_base64']))
    assert hashlib.sha256(data).hexdigest() == entry['sha256']
    return np.frombuffer(data, np.uint8).reshape(entry['shape'])


def value(x) -> float:
    return float(x)  # 'inf' / 'nan' strings parse too


def diagonal(shape, spacing) -> float:
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))


def _generator():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / REFERENCE['provenance']['generator']
    spec = importlib.util.spec_from_file_location('surface_distance_reference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stored_pairs_are_what_the_generator_makes():
    """The file and its generator stay together: ``make_pairs()`` yields exactly the stored arrays (sha256 of
    the uint8 bytes), names, spacings and classes, in order."""
    pairs = _generator().make_pairs()
    assert [p['name'] for p in pairs] == [c['name'] for c in REFERENCE['cases']]
    for pair, case in zip(pairs, REFERENCE['cases']):
        for side in ('gt', 'pred'):
            data = np.ascontiguousarray(pair[side], dtype=np.uint8)
            assert list(data.shape) == case[side]['shape'], (pair['name'], side)
            assert hashlib.sha256(data.tobytes()).hexdigest() == case[side]['sha256'], (pair['name'], side)
        assert list(pair['spacing']) == case['spacing']
        assert [str(c) for c in pair['classes']] == list(case['classes'])


def test_stored_values_are_what_surface_distance_gives_now(reference, monkeypatch):
    """The stored values against DeepMind's surface-distance called live (a test extra, required on CI):
    every number of every class, so a regenerated or edited file cannot drift from the library."""
    for alias, value_ in (('Inf', np.inf), ('NaN', np.nan)):   # surface-distance 0.1 uses the aliases NumPy 2
        monkeypatch.setattr(np, alias, value_, raising=False)     # removed (the generator sets them too)
    sd = reference('surface_distance')
    generator = _generator()
    for case in REFERENCE['cases']:
        gt, pred = decode(case['gt']), decode(case['pred'])
        for cls, stored in case['classes'].items():
            live = generator.reference(gt == int(cls), pred == int(cls), case['spacing'], sd)
            assert set(live) == set(stored)
            for key, want in stored.items():
                got = live[key]
                if isinstance(want, dict):
                    assert {t: value(v) for t, v in got.items()} == pytest.approx(
                        {t: value(v) for t, v in want.items()}, rel=1e-12, nan_ok=True), (case['name'], cls, key)
                else:
                    assert value(got) == pytest.approx(value(want), rel=1e-12, nan_ok=True), (case['name'], cls, key)


@pytest.mark.parametrize('name', sorted(CASES))
def test_surface_distances_match_stored_reference(name):
    case = CASES[name]
    gt, pred = decode(case['gt']), decode(case['pred'])
    for cls, ref in case['classes'].items():
        sd = surface_distances(gt == int(cls), pred == int(cls), case['spacing'])
        assert sd.surfel_areas_gt.size == ref['n_surfels_gt'] and sd.surfel_areas_pred.size == ref['n_surfels_pred']
        assert sd.surfel_areas_gt.sum() == pytest.approx(value(ref['area_gt']), **TOL)
        assert sd.surfel_areas_pred.sum() == pytest.approx(value(ref['area_pred']), **TOL)
        assert int(np.isinf(sd.distances_gt_to_pred).sum()) == ref['n_inf_gt_to_pred']
        assert int(np.isinf(sd.distances_pred_to_gt).sum()) == ref['n_inf_pred_to_gt']
        if sd.empty:
            continue
        for tol, expected in ref['nsd'].items():
            assert nsd(sd, float(tol)) == pytest.approx(value(expected), **TOL), (cls, tol)
        assert hd95(sd) == pytest.approx(value(ref['hd95']), **TOL)
        assert robust_hausdorff(sd, 100) == pytest.approx(value(ref['hd100']), **TOL)
        asd_gt, asd_pred = average_surface_distance(sd)
        assert asd_gt == pytest.approx(value(ref['asd_gt_to_pred']), **TOL)
        assert asd_pred == pytest.approx(value(ref['asd_pred_to_gt']), **TOL)
        assert assd(sd) == pytest.approx(value(ref['assd']), **TOL)


@pytest.mark.parametrize('name', sorted(CASES))
@pytest.mark.parametrize('tolerance', [0.5, 2.0])
def test_case_metrics_match_stored_reference(name, tolerance):
    case = CASES[name]
    gt, pred = decode(case['gt']), decode(case['pred'])
    classes = [int(c) for c in case['classes']]
    rows = case_metrics(gt, pred, case['spacing'], classes, tolerance)
    diag = diagonal(gt.shape, case['spacing'])
    for row in rows:
        ref = case['classes'][str(row['class'])]
        # voxel counts are read off the stored arrays by surface-distance's script, Dice from its function
        n_gt, n_pred, n_both = ref['n_gt_voxels'], ref['n_pred_voxels'], ref['n_both_voxels']
        if row['empty'] == BOTH_EMPTY:  # surface-distance: nan everywhere (0 / 0), hd95 inf
            assert math.isnan(value(ref['dice'])) and math.isnan(value(ref['nsd'][f'{tolerance:g}']))
            assert (row['dice'], row['iou'], row['nsd'], row['hd95'], row['assd']) == (1.0, 1.0, 1.0, 0.0, 0.0)
        elif row['empty']:  # surface-distance: dice 0, nsd 0, hd95 / assd inf -> the volume diagonal
            assert value(ref['dice']) == 0.0 and value(ref['nsd'][f'{tolerance:g}']) == 0.0
            assert math.isinf(value(ref['hd95'])) and math.isinf(value(ref['assd']))
            assert (row['dice'], row['iou'], row['nsd']) == (0.0, 0.0, 0.0)
            assert row['hd95'] == pytest.approx(diag, **TOL) and row['assd'] == pytest.approx(diag, **TOL)
        else:
            assert row['dice'] == pytest.approx(value(ref['dice']), **TOL)
            assert row['dice'] == pytest.approx(2 * n_both / (n_gt + n_pred), **TOL)
            assert row['iou'] == pytest.approx(value(ref['iou']), **TOL)
            assert row['iou'] == pytest.approx(n_both / (n_gt + n_pred - n_both), **TOL)
            assert row['nsd'] == pytest.approx(value(ref['nsd'][f'{tolerance:g}']), **TOL)
            assert row['hd95'] == pytest.approx(value(ref['hd95']), **TOL)
            assert row['assd'] == pytest.approx(value(ref['assd']), **TOL)


def test_stored_pairs_exercise_what_they_claim():
    """The pairs cover what the generator promises (so a regenerated file cannot silently lose a case)."""
    spacing = CASES['anisotropic_two_structures']['spacing']
    assert len(set(spacing)) == 3
    empty = CASES['empty_vs_nonempty']['classes']
    assert (empty['1']['n_pred_voxels'], empty['2']['n_gt_voxels'], empty['3']['n_gt_voxels']) == (0, 0, 0)
    assert CASES['two_voxel_object']['classes']['1']['n_gt_voxels'] == 2
    gt, pred = decode(CASES['border_and_far_blob']['gt']), decode(CASES['border_and_far_blob']['pred'])
    assert gt[0].any() and gt[:, 0].any() and gt[:, :, 0].any() and gt[:, -1].any() and gt[:, :, -1].any()
    assert pred[-1].any() and not gt[-1].any()  # the far blob widens the union box beyond the GT's
    assert len(CASES['disc_2d']['gt']['shape']) == 2
