"""VolumeMetric on a dataset prepared with a crop: the prediction is mapped back to the source grid and scored
against the whole source label, so label voxels the crop removed count as missed.

Checked against numbers computed by hand from the raw label file (read with nibabel): a perfect prediction on
the cropped slices equals the raw label inside the centre-crop window (computed here from the sizes) and
nothing outside, so Dice = 2|G ∩ W| / (|G ∩ W| + |G|) per structure, and ASSD is medpy's on those two masks
with the spacing of the raw file's affine diagonal (the crossmoda protocol).
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch

import mmseg_medical  # noqa: F401
from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.evaluation.volume_metric import VolumeMetric
from mmseg_medical.manifest import read_manifest
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

SIZE, CROP, SLICES = 48, 24, 6


@pytest.fixture(scope='module')
def cropped(tmp_path_factory):
    root = tmp_path_factory.mktemp('crossmoda_crop')
    raw = write_crossmoda_release(root / 'download', naming='2022', num_source=4, num_target=1, num_val=1,
                                  size=SIZE, num_slices=SLICES)
    out = root / 'prepared'
    prepare(CONVERTERS['crossmoda'](crop=CROP, val_fraction=0.5), raw, out, workers=1, previews=0)
    return raw, out


def _perfect_samples(root: Path):
    """The prepared mask slices as predictions (perfect on the cropped grid), every labelled slice."""
    out = []
    for r in read_manifest(root):
        if not r.mask:
            continue
        mask = cv2.imread(str(root / r.mask), cv2.IMREAD_UNCHANGED)
        out.append(dict(img_path=str(root / r.image), gt_sem_seg=dict(data=torch.from_numpy(mask)[None]),
                        pred_sem_seg=dict(data=torch.from_numpy(mask)[None])))
    return out


def test_cropped_dataset_scores_against_the_full_source_label(cropped, tmp_path, reference):
    medpy = reference('medpy.metric.binary')
    raw, root = cropped
    metric = VolumeMetric(protocol='crossmoda', n_bootstrap=0, output_dir=str(tmp_path / 'volumes'))
    metric.dataset_meta = dict(classes=('background', 'vestibular_schwannoma', 'cochlea'))
    for sample in _perfect_samples(root):
        metric.process({}, [sample])
    result = metric.compute_metrics(metric.results)
    with open(tmp_path / 'volumes' / 'metrics.csv', newline='') as f:
        rows = {(r['case'], int(r['class'])): r for r in csv.DictReader(f)}
    labels = sorted(raw.rglob('*_Label.nii.gz'))
    assert len(labels) == 4
    lo = (SIZE - CROP) // 2
    cut_somewhere, checked = False, set()
    for path in labels:
        # 2022 release: a re-released 2021 label (crossmoda2021_ldn_2_Label) belongs to the scan of the same site
        # and number (crossmoda2022_ldn_2_ceT1), whose name is the case
        _, site, number = path.name[:-len('_Label.nii.gz')].split('_')
        case = next(k for k, _ in rows if k.endswith(f'_{site}_{number}'))
        label_file = nib.load(str(path))
        truth = np.rint(np.asanyarray(label_file.dataobj)).astype(np.uint8)     # (i, j, k), L,P,S file
        window = np.zeros(truth.shape, bool)
        window[lo:lo + CROP, lo:lo + CROP, :] = True
        spacing = [abs(label_file.affine[k, k]) for k in range(3)]
        for c in (1, 2):
            checked.add((case, c))
            g = truth == c
            p = g & window
            if not g.any():
                continue
            row = rows[(case, c)]
            dice = 2 * p.sum() / (p.sum() + g.sum())
            cut_somewhere |= bool(dice < 1)
            assert float(row['dice']) == pytest.approx(dice, abs=1e-12), (case, c)
            want = medpy.assd(p.astype(int), g.astype(int), voxelspacing=spacing) if p.any() else 350.0
            assert float(row['assd']) == pytest.approx(want, rel=1e-9), (case, c)
    # crossMoDA 2022 names carry the site: per-site means are logged and returned (London ldn / Tilburg etz)
    sites = {'ldn': 'London', 'etz': 'Tilburg'}
    by_site = {}
    for (case, c), row in rows.items():
        site = sites[case.split('_')[1]]
        by_site.setdefault((site, c), []).append(float(row['dice']))
    for (site, c), values in by_site.items():
        name = ('vestibular_schwannoma', 'cochlea')[c - 1]
        assert result[f'Dice.{name}.{site}'] == pytest.approx(100 * np.mean(values), abs=1e-4)
    assert checked == set(rows)
    assert cut_somewhere, 'the crop removes no labelled voxel: the test would not tell slice-grid from source-grid scoring'


def test_resampled_and_cropped_dataset_scores_against_the_full_source_label(tmp_path, reference):
    """--spacing and --crop together: the scored ground truth is the whole raw label file, so each row's Dice
    equals medpy's Dice of the written source-grid prediction against the raw label (read with nibabel), and
    the crop visibly costs Dice (a perfect slice prediction scores < 1)."""
    medpy = reference('medpy.metric.binary')
    raw = write_crossmoda_release(tmp_path / 'download', naming='2021', num_source=4, num_target=1, num_val=1,
                                  size=SIZE, num_slices=SLICES)
    root = tmp_path / 'prepared'
    prepare(CONVERTERS['crossmoda'](spacing=3.0, crop=40, val_fraction=0.5), raw, root, workers=1, previews=0)
    metric = VolumeMetric(protocol='crossmoda', n_bootstrap=0, output_dir=str(tmp_path / 'volumes'))
    metric.dataset_meta = dict(classes=('background', 'vestibular_schwannoma', 'cochlea'))
    for sample in _perfect_samples(root):
        metric.process({}, [sample])
    metric.compute_metrics(metric.results)
    with open(tmp_path / 'volumes' / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    below_one = 0
    for row in rows:
        truth = np.rint(np.asanyarray(nib.load(str(
            raw / 'crossmoda_training' / 'source_training' / f'{row["case"]}_Label.nii.gz')).dataobj)).astype(np.uint8)
        pred = np.asanyarray(nib.load(str(tmp_path / 'volumes' / f'{row["case"]}.nii.gz')).dataobj)
        c = int(row['class'])
        if (truth == c).any():
            assert float(row['dice']) == medpy.dc(pred == c, truth == c)
            below_one += float(row['dice']) < 1
    assert below_one > 0
