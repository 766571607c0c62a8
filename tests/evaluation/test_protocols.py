"""Evaluation protocols against their official implementations.

* ``crossmoda`` against medpy 0.5.2 (``dc``, ``assd``, the library the challenge's ``scores.py`` calls; a
  test extra) with ``voxelspacing = [abs(affine[k, k])]`` as ``scores.py`` reads it, on random pairs and on
  pairs built on real HemSeg label files (skipped without ``../shared``);
* ``covid19`` against DeepMind ``surface-distance`` values stored with provenance
  (``data/surface_distance_reference.json``, written by ``tools/benchmarks/surface_distance_reference.py``);
* the registry, the summary rules (NaN left out, median and IQR) against hand-computed numbers, and
  ``evaluate_volumes --protocol`` end to end (median [IQR], per site, CSV columns, exit codes).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import json
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation import case_metrics, summarize
from mmseg_medical.evaluation.cli import main as evaluate_main
from mmseg_medical.evaluation.protocols import get_protocol, protocol_names
from mmseg_medical.evaluation.summary import summarize_by_site

HERE = Path(__file__).parent
REALDATA = HERE.parents[1].parent / 'shared' / 'realdata'


# ---------------------------------------------------------------------------------------------- registry
def test_every_protocol_states_its_rules_and_source():
    assert {'default', 'hemseg', 'crossmoda', 'covid19'} <= set(protocol_names())
    for name in protocol_names():
        spec = get_protocol(name)
        assert spec.name == name and spec.metrics and spec.source and spec.title
        for rule in (spec.spacing_rule, spec.grid_rule, spec.empty_rule, spec.aggregation_rule, spec.tolerance_rule):
            assert isinstance(rule, str) and rule
    assert get_protocol('crossmoda').metrics == ('dice', 'assd')
    assert get_protocol('covid19').metrics == ('dice', 'nsd')
    with pytest.raises(MedSegError, match='unknown evaluation protocol'):
        get_protocol('brats')


# ---------------------------------------------------------------------------------------------- crossmoda
def _ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)):
    grid = np.indices(shape).astype(float)
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= radius ** 2


def _random_pairs():
    rng = np.random.default_rng(11)
    noisy = rng.random((14, 22, 18)) > 0.55
    yield 'shifted balls', _ball((20, 30, 30), (10, 15, 15), 6), _ball((20, 30, 30), (11, 16, 13), 5)
    yield 'noise', noisy, np.roll(noisy, 2, axis=1) | _ball((14, 22, 18), (3, 3, 3), 2)
    border = np.zeros((8, 16, 16), bool)
    border[:, :6] = True                      # touches the array border: erosion treats outside as background
    yield 'border', border, np.roll(border, 3, axis=1)
    tiny = np.zeros((10, 10, 10), bool)
    tiny[4, 4, 4] = True
    yield 'one voxel', tiny, np.roll(tiny, 2, axis=2)


AFFINES = {
    'L,P,S (real crossMoDA labels)': np.diag([-0.41, -0.41, 1.5, 1.0]),
    'RAS': np.diag([0.47, 0.52, 5.0, 1.0]),
    'LAS tilted': np.array([[-0.45, 0, 0, 10], [0, 0.42, -0.9, 3], [0, 0.1, 4.8, -7], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize('affine_name', sorted(AFFINES))
@pytest.mark.parametrize('index', range(4))
def test_crossmoda_equals_medpy(index, affine_name, reference):
    medpy = reference('medpy.metric.binary')
    _, gt, pred = list(_random_pairs())[index]
    affine = AFFINES[affine_name]
    spacing = [abs(affine[k, k]) for k in range(3)]          # scores.py's voxel spacing
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    labels_gt, labels_pred = gt.astype(np.uint8) * 2, pred.astype(np.uint8) * 2   # class 2 (cochlea)
    row = case_metrics(labels_gt, labels_pred, zooms, [2], protocol='crossmoda', affine=affine)[0]
    assert row['dice'] == medpy.dc(pred.astype(int), gt.astype(int))
    assert row['assd'] == medpy.assd(pred.astype(int), gt.astype(int), voxelspacing=spacing)
    assert set(row) == {'class', 'dice', 'assd', 'empty'}


def test_crossmoda_empty_rules(monkeypatch, reference):
    medpy = reference('medpy.metric.binary')
    gt = _ball((10, 12, 12), (5, 6, 6), 3).astype(np.uint8)
    empty = np.zeros_like(gt)
    affine = np.diag([-0.41, -0.41, 1.5, 1.0])
    pred_empty = case_metrics(gt, empty, (0.41, 0.41, 1.5), [1], protocol='crossmoda', affine=affine)[0]
    assert (pred_empty['dice'], pred_empty['assd'], pred_empty['empty']) == (0.0, 350.0, 'pred_empty')
    both = case_metrics(empty, empty, (0.41, 0.41, 1.5), [1], protocol='crossmoda', affine=affine)[0]
    # medpy's dc as it ran with NumPy < 2.3, whose count_nonzero returned a Python int: its ZeroDivisionError
    # branch gives 1.0. With NumPy >= 2.3 (a NumPy integer) the same code gives NaN.
    numpy_module = medpy.numpy
    count = numpy_module.count_nonzero
    monkeypatch.setattr(numpy_module, 'count_nonzero', lambda a, *args, **kw: int(count(a, *args, **kw)))
    assert medpy.dc(empty, empty) == 1.0
    monkeypatch.undo()
    if np.lib.NumpyVersion(np.__version__) >= '2.3.0':
        with np.errstate(all='ignore'):
            assert np.isnan(medpy.dc(empty, empty))
    assert both['dice'] == 1.0 and both['assd'] == 350.0 and both['empty'] == 'both_empty'
    gt_empty = case_metrics(empty, gt, (0.41, 0.41, 1.5), [1], protocol='crossmoda', affine=affine)[0]
    assert (gt_empty['dice'], gt_empty['assd'], gt_empty['empty']) == (0.0, 350.0, 'gt_empty')


def test_crossmoda_refuses_a_permuted_affine():
    gt = _ball((8, 8, 8), (4, 4, 4), 2).astype(np.uint8)
    permuted = np.array([[0, 0.5, 0, 0], [0.5, 0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    with pytest.raises(MedSegError, match='diagonal'):
        case_metrics(gt, gt, (0.5, 0.5, 2.0), [1], protocol='crossmoda', affine=permuted)


def _real_labels(n: int = 3):
    folder = REALDATA / 'hemseg' / 'IPH_IVH_label'
    if not folder.is_dir():
        pytest.skip('../shared/realdata is not available')
    return sorted(folder.rglob('*.nii.gz'))[:n]


def test_crossmoda_equals_medpy_on_real_label_geometry(reference):
    """Real label files (L,P,S affines with negative diagonal, 0.4-0.5 x 5 mm, one gantry-tilted) scored by
    scores.py's recipe with medpy against the protocol, for a 1-voxel dilation and an empty prediction."""
    medpy = reference('medpy.metric.binary')
    from scipy.ndimage import binary_dilation

    for path in _real_labels(6):
        image = nib.load(str(path))
        gt = np.asarray(image.dataobj).astype(np.uint8)
        if not gt.any():
            continue
        box = tuple(slice(max(int(a.min()) - 4, 0), int(a.max()) + 5) for a in np.nonzero(gt))
        gt = np.ascontiguousarray(gt[box])              # the structure's neighbourhood keeps the test fast
        pred = binary_dilation(gt == 1).astype(np.uint8)
        spacing = [abs(image.affine[k, k]) for k in range(3)]
        row = case_metrics(gt, pred, image.header.get_zooms()[:3], [1], protocol='crossmoda',
                           affine=image.affine)[0]
        assert row['dice'] == medpy.dc((pred == 1).astype(int), (gt == 1).astype(int)), path.name
        assert row['assd'] == medpy.assd((pred == 1).astype(int), (gt == 1).astype(int), voxelspacing=spacing)


def test_crossmoda_sites_from_2022_names():
    spec = get_protocol('crossmoda')
    assert spec.site('crossmoda2022_etz_106') == 'Tilburg' and spec.site('crossmoda2021_ldn_12') == 'London'
    assert spec.site('crossmoda_12') is None
    rows = [{'case': c, 'class': 1, 'dice': d, 'assd': a, 'empty': ''}
            for c, d, a in (('crossmoda2022_etz_1', 0.8, 1.0), ('crossmoda2022_etz_2', 0.6, 3.0),
                            ('crossmoda2021_ldn_3', 0.9, 0.5))]
    by_site = summarize_by_site(rows, 'crossmoda')
    assert set(by_site) == {'London', 'Tilburg'}
    assert by_site['Tilburg'][1]['dice']['mean'] == pytest.approx(0.7)
    assert by_site['London'][1]['assd']['median'] == 0.5
    assert summarize_by_site([dict(r, case='crossmoda_1') for r in rows], 'crossmoda') == {}


# ---------------------------------------------------------------------------------------------- covid19
def _decode(blob: dict) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(blob['zlib_base64']))
    assert hashlib.sha256(raw).hexdigest() == blob['sha256']
    return np.frombuffer(raw, dtype=np.uint8).reshape(blob['shape'])


def _reference():
    return json.loads((HERE / 'data' / 'surface_distance_reference.json').read_text())


@pytest.mark.parametrize('names', [{1: 'left_lung', 2: 'right_lung', 3: 'infection'},
                                   {1: 'infection', 2: 'left_lung', 3: 'right_lung'}])
def test_covid19_equals_deepmind_reference(names):
    """DSC and NSD at the benchmark's tolerance of each class name (1 mm lungs, 3 mm lesion) equal DeepMind's
    values stored for the same arrays, NaN where DeepMind gives NaN (a class absent from both)."""
    ref = _reference()
    assert 3.0 in ref['tolerances_mm'] and 1.0 in ref['tolerances_mm']
    for case in ref['cases']:
        gt, pred = _decode(case['gt']), _decode(case['pred'])
        classes = sorted(int(c) for c in case['classes'])
        rows = case_metrics(gt, pred, case['spacing'], classes, protocol='covid19',
                            names={c: names[c] for c in classes})
        for row in rows:
            expected = case['classes'][str(row['class'])]
            tolerance = '3' if names[row['class']] == 'infection' else '1'
            for key, want in (('dice', expected['dice']), ('nsd', expected['nsd'][tolerance])):
                if want == 'nan':
                    assert np.isnan(row[key]), (case['name'], row)
                else:
                    assert row[key] == pytest.approx(want, rel=1e-12, abs=1e-12), (case['name'], key, row)


def test_covid19_tolerances_follow_the_class_names():
    spec = get_protocol('covid19')
    assert spec.tolerances([1, 2, 3], {1: 'left_lung', 2: 'right_lung', 3: 'infection'}) == {1: 1.0, 2: 1.0, 3: 3.0}
    assert spec.tolerances([1], {1: 'infection'}) == {1: 3.0}
    assert spec.tolerances([1], {1: 'infection'}, override=2.0) == {1: 2.0}
    with pytest.raises(MedSegError, match='no NSD tolerance'):
        spec.tolerances([1], {1: 'vessel'})
    # the evaluation script's reading of label values from the first ground truth's largest label
    assert spec.class_names(1) == {1: 'infection'}
    assert spec.class_names(3) == {1: 'left_lung', 2: 'right_lung', 3: 'infection'}


# ---------------------------------------------------------------------------------------------- summary
def test_summary_leaves_nan_out_where_the_protocol_says_so():
    rows = [{'case': 'a', 'class': 1, 'dice': 0.5, 'nsd': 0.25, 'empty': ''},
            {'case': 'b', 'class': 1, 'dice': float('nan'), 'nsd': float('nan'), 'empty': 'both_empty'},
            {'case': 'c', 'class': 1, 'dice': 1.0, 'nsd': 0.75, 'empty': ''}]
    s = summarize(rows, n_bootstrap=0, protocol='covid19')[1]
    assert s['n'] == 3 and s['dice']['n'] == 2
    assert s['dice']['mean'] == 0.75 and s['nsd']['mean'] == 0.5
    assert s['dice']['std'] == pytest.approx(np.sqrt(0.125))     # sample std of (0.5, 1.0)
    with pytest.raises(MedSegError, match='finite'):
        summarize([dict(r, iou=0.0, hd95=0.0, assd=0.0) for r in rows], n_bootstrap=0, protocol='default')


def test_median_and_quartiles_hand_computed():
    values = [1.0, 2.0, 4.0, 8.0, 350.0]
    rows = [{'case': str(i), 'class': 2, 'dice': 0.1 * i, 'assd': v, 'empty': ''} for i, v in enumerate(values)]
    s = summarize(rows, n_bootstrap=0, protocol='crossmoda')[2]['assd']
    assert (s['median'], s['q1'], s['q3']) == (4.0, 2.0, 8.0)    # linear interpolation at 25/50/75 %


# ---------------------------------------------------------------------------------------------- CLI
def _write(path: Path, labels: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), str(path))


def test_evaluate_volumes_crossmoda_median_iqr_and_sites(tmp_path, capsys, reference):
    medpy = reference('medpy.metric.binary')
    gt_dir, pred_dir = tmp_path / 'gt', tmp_path / 'pred'
    gt_dir.mkdir(), pred_dir.mkdir()
    affine = np.diag([-0.41, -0.41, 1.5, 1.0])
    expected = {}
    for k, name in enumerate(('crossmoda2022_etz_106', 'crossmoda2022_etz_107', 'crossmoda2021_ldn_5')):
        gt = np.zeros((24, 24, 10), np.uint8)
        gt[_ball(gt.shape, (12, 12, 5), 6)] = 1
        gt[_ball(gt.shape, (4, 4, 5), 2)] = 2
        pred = np.roll(gt, k, axis=0)
        if k == 2:
            pred[pred == 2] = 0                       # cochlea missed: ASSD 350 mm
        _write(gt_dir / f'{name}.nii.gz', gt, affine)
        _write(pred_dir / f'{name}.nii.gz', pred, affine)
        stored = nib.load(str(gt_dir / f'{name}.nii.gz')).affine     # float32 in the header, as scores.py reads it
        spacing = [abs(stored[i, i]) for i in range(3)]
        expected[name] = {c: (medpy.dc(pred == c, gt == c),
                              medpy.assd(pred == c, gt == c, voxelspacing=spacing) if (pred == c).any() else 350.0)
                          for c in (1, 2)}
    out = tmp_path / 'metrics.csv'
    assert evaluate_main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out),
                          '--protocol', 'crossmoda', '--bootstrap', '0']) == 0
    printed = capsys.readouterr().out
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ['case', 'class', 'dice', 'assd', 'empty']
    for r in rows:
        dice, assd = expected[r['case']][int(r['class'])]
        assert float(r['dice']) == dice and float(r['assd']) == assd
    cochlea = sorted(expected[c][2][1] for c in expected)
    q1, median, q3 = np.percentile(cochlea, [25, 50, 75])
    assert f'{median:.2f} [{q1:.2f}, {q3:.2f}]' in printed
    assert 'median [IQR]' in printed and 'Site London' in printed and 'Site Tilburg' in printed


def _case_2023(k: int):
    """A crossMoDA 2023 label (1 intra-meatal VS lateral, 2 extra-meatal VS medial, 3 cochlea) and a prediction
    that shifts it and, from case 1 on, calls part of the intra-meatal tumour extra-meatal."""
    gt = np.zeros((28, 24, 10), np.uint8)
    tumour = _ball(gt.shape, (14, 12, 5), 6)
    gt[tumour] = 2
    gt[tumour & (np.indices(gt.shape)[0] > 16)] = 1
    gt[_ball(gt.shape, (4, 4, 5), 2)] = 3
    pred = np.roll(gt, k, axis=1)
    if k:
        pred[(pred == 1) & (np.indices(gt.shape)[0] < 18 + k)] = 2
    return gt, pred


def test_evaluate_volumes_crossmoda_2023_vs_union_and_ukm(tmp_path, capsys):
    """crossMoDA 2023 label files: rows per structure (1, 2, 3) and ``vs``, whose Dice and ASSD are medpy 0.5.2's
    ``dc`` / ``assd`` of the union masks intra ∪ extra computed here; the per-site tables name ukm."""
    medpy = pytest.importorskip('medpy.metric.binary')
    gt_dir, pred_dir = tmp_path / 'gt', tmp_path / 'pred'
    gt_dir.mkdir(), pred_dir.mkdir()
    affine = np.diag([-0.63, -0.63, 1.5, 1.0])
    expected = {}
    for k, name in enumerate(('crossmoda2023_ukm_7', 'crossmoda2023_etz_20', 'crossmoda2023_ldn_3')):
        gt, pred = _case_2023(k)
        _write(gt_dir / f'{name}.nii.gz', gt, affine)
        _write(pred_dir / f'{name}.nii.gz', pred, affine)
        stored = nib.load(str(gt_dir / f'{name}.nii.gz')).affine
        spacing = [abs(stored[i, i]) for i in range(3)]
        masks = {c: (pred == c, gt == c) for c in (1, 2, 3)}
        masks['vs'] = (np.isin(pred, [1, 2]), np.isin(gt, [1, 2]))
        expected[name] = {c: (medpy.dc(p, g), medpy.assd(p, g, voxelspacing=spacing)) for c, (p, g) in masks.items()}
    out = tmp_path / 'metrics.csv'
    assert evaluate_main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out),
                          '--protocol', 'crossmoda', '--bootstrap', '0']) == 0
    printed = capsys.readouterr().out
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['case'], r['class']) for r in rows] == [(c, k) for c in sorted(expected) for k in ('1', '2', '3', 'vs')]
    for r in rows:
        key = r['class'] if r['class'] == 'vs' else int(r['class'])
        assert (float(r['dice']), float(r['assd'])) == expected[r['case']][key], r
    # the union is its own structure: swapping intra and extra lowers their Dice, not the tumour's
    assert expected['crossmoda2023_ldn_3']['vs'][0] > max(expected['crossmoda2023_ldn_3'][c][0] for c in (1, 2))
    assert '| vs (1 vs_intrameatal ∪ 2 vs_extrameatal) | 3 |' in printed
    assert '| 1 (vs_intrameatal) | 3 |' in printed and '| 3 (cochlea) | 3 |' in printed
    for site in ('ukm', 'London', 'Tilburg'):
        assert f'Site {site} (1 cases)' in printed
    vs = sorted(expected[c]['vs'][0] for c in expected)
    q1, median, q3 = np.percentile(vs, [25, 50, 75])
    assert f'{median:.4f} [{q1:.4f}, {q3:.4f}]' in printed
    # only the intra and extra classes together make the union: --classes without one of them has no vs row
    assert evaluate_main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(out), '--classes', '1,3',
                          '--protocol', 'crossmoda', '--bootstrap', '0']) == 0
    with open(out, newline='') as f:
        assert {r['class'] for r in csv.DictReader(f)} == {'1', '3'}


def test_crossmoda_union_rule_and_ukm_site():
    spec = get_protocol('crossmoda')
    assert spec.site('crossmoda2023_ukm_12') == 'ukm' and spec.site('crossmoda2023_etz_1') == 'Tilburg'
    names = {1: 'vs_intrameatal', 2: 'vs_extrameatal', 3: 'cochlea'}
    assert spec.unions(names, [1, 2, 3]) == {'vs': (1, 2)}
    assert spec.unions(names, [2, 3]) == {}
    assert spec.unions({1: 'vestibular_schwannoma', 2: 'cochlea'}, [1, 2]) == {}
    assert spec.class_names(3) == names and spec.class_names(2) == {}
    from mmseg_medical.conversion.crossmoda import CLASSES_2023       # the names the converter writes
    assert spec.class_names(3) == {i: n for i, n in enumerate(CLASSES_2023) if i}
    assert get_protocol('default').unions(names, [1, 2, 3]) == {}


@pytest.mark.parametrize('option', [['--bootstrap', '-1'], ['--seed', '-3'], ['--protocol', 'nope']])
def test_evaluate_volumes_bad_option_is_a_usage_error(tmp_path, option, capsys):
    with pytest.raises(SystemExit) as exc:
        evaluate_main(['--pred', str(tmp_path), '--gt', str(tmp_path), '--out', str(tmp_path / 'm.csv'), *option])
    assert exc.value.code == 2
    assert 'error:' in capsys.readouterr().err
    assert not (tmp_path / 'm.csv').exists()


def test_readme_protocol_table_lists_every_registered_protocol():
    """The README's protocol table is hand-written: it must name every registered protocol, each once,
    with the repository its module says it reproduces."""
    readme = (HERE.parents[1] / 'README.md').read_text()
    start = readme.index('| protocol | reproduces')
    table = readme[start:readme.index('\n\n', start)]
    rows = {line.split('|')[1].strip().strip('`'): line for line in table.splitlines()[2:]}
    assert set(rows) == set(protocol_names())
    for name, line in rows.items():
        source = get_protocol(name).source
        if '/' in source.split(':')[0]:                       # 'owner/repo: file @ commit'
            assert source.split(':')[0].split('/')[1] in line, (name, source)


@pytest.mark.parametrize('labels, tolerances', [((1, 2, 3), '1: 1, 2: 1, 3: 3'), ((1,), '1: 3')])
def test_evaluate_volumes_covid19_reads_class_meanings_like_the_script(tmp_path, capsys, labels, tolerances):
    """Without --data, the benchmark script's rule: the first ground truth's largest label says which labels are
    lungs (1 mm) and which is the lesion (3 mm): 3 -> lungs 1, 2 + lesion 3; 1 -> lesion 1."""
    gt_dir, pred_dir = tmp_path / 'gt', tmp_path / 'pred'
    gt_dir.mkdir(), pred_dir.mkdir()
    gt = np.zeros((12, 12, 4), np.uint8)
    for k, label in enumerate(labels):
        gt[2 + 3 * k:4 + 3 * k, 2:8, 1:3] = label
    _write(gt_dir / 'a.nii.gz', gt, np.eye(4))
    _write(pred_dir / 'a.nii.gz', gt, np.eye(4))
    assert evaluate_main(['--pred', str(pred_dir), '--gt', str(gt_dir), '--out', str(tmp_path / 'm.csv'),
                          '--protocol', 'covid19', '--bootstrap', '0']) == 0
    assert f'NSD tolerance (mm) per class: {tolerances}.' in capsys.readouterr().out
