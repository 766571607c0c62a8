"""infer_volume's ensembles, mirror TTA, saved probabilities and prepared-dataset inputs, on randomly
initialised tiny models (the properties hold for any weights; no training needed).

Each property is checked against something computed here independently: the ensemble against the mean of
the single models' saved probabilities, mirror TTA against the mirrored scan's own probabilities, labels
against the argmax of the saved probabilities, the background-filled crop window against the crop offsets
by hand, the affine against nibabel's reading of the source, and a HemSeg split read from its raw release
against mmseg's ``inference_model`` on the slice PNGs ``prepare`` wrote.
"""
from __future__ import annotations

import copy
import csv
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.inference import load_config
from mmseg_medical.inference_cli import build_parser, main
from mmseg_medical.io import read_nifti
from mmseg_medical.orientation import to_display
from mmseg_medical.restacking import split_cases
from mmseg_medical.runs import tiny_overrides
from mmseg_medical.synthetic import cranium_patient

REPO = Path(__file__).resolve().parents[1]
CRANIUM = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
CROSSMODA = REPO / 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
HEMSEG = REPO / 'configs/hemseg/fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-512x512.py'


def cfg_dict(options: list) -> dict:
    """``--cfg-options`` strings as the CLI parses them."""
    return build_parser().parse_args(['--input', 'x', '--output', 'y', '--cfg-options', *options]).cfg_options


def random_checkpoint(config: Path, options: list, path: Path, seed: int, classes=None) -> Path:
    """A randomly initialised model of ``config`` (seeded) saved as a checkpoint with its class names."""
    import torch
    from mmseg.apis import init_model

    cfg = load_config(config, cfg_dict(options))
    torch.manual_seed(seed)
    model = init_model(copy.deepcopy(cfg), None, 'cpu')
    if classes is None:
        from mmseg.registry import DATASETS
        classes = DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO['classes']
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': tuple(classes)}}}, str(path))
    return path


def run_cli(config, checkpoints, options, out, *extra, source_flag='--input', source=None) -> int:
    argv = [str(config), *map(str, checkpoints), source_flag, str(source), '--output', str(out), '--device', 'cpu',
            '--batch-size', '4', *extra]
    return main(argv + ['--cfg-options', *options])


def probabilities(out: Path, case: str) -> np.ndarray:
    with np.load(out / f'{case}.npz') as f:
        assert list(f.keys()) == ['probabilities']
        return f['probabilities']


def labels_of(out: Path, name: str) -> np.ndarray:
    return np.asanyarray(nib.load(str(out / name)).dataobj)


@pytest.fixture(scope='module')
def cranium(cranium_data, tmp_path_factory):
    """``(options, [checkpoint seed 1, checkpoint seed 2], scans folder)``: two random 8-channel UNets at 64²
    and one unseen phantom head stored RAS (display = columns and rows reversed)."""
    work = tmp_path_factory.mktemp('ensemble')
    options = tiny_overrides(cranium_data, scale=64, base_channels=8, workers=0)
    checkpoints = [random_checkpoint(CRANIUM, options, work / f'seed{s}.pth', s) for s in (1, 2)]
    ct, _ = cranium_patient(8, num_slices=5, size=64, seed=0)
    sx, sy, sz = ct.spacing
    affine = np.array([[sx, 0, 0, 14.5], [0, sy, 0, -120.0], [0, 0, sz, 35.0], [0, 0, 0, 1]])
    (work / 'scans').mkdir()
    nib.save(nib.Nifti1Image(ct.nifti_array(), affine), str(work / 'scans/head.nii.gz'))
    return options, checkpoints, work / 'scans'


def test_ensemble_is_the_mean_of_the_single_models(cranium, tmp_path):
    options, (a, b), scans = cranium
    save = ['--save-probabilities', '--probabilities-dtype', 'float32']
    for name, checkpoints in (('a', [a]), ('b', [b]), ('ab', [a, b])):
        assert run_cli(CRANIUM, checkpoints, options, tmp_path / name, *save, source=scans) == 0
    single_a, single_b = probabilities(tmp_path / 'a', 'head'), probabilities(tmp_path / 'b', 'head')
    ensemble = probabilities(tmp_path / 'ab', 'head')
    assert ensemble.dtype == np.float32 and ensemble.shape == (2, 64, 64, 5)
    assert not np.allclose(single_a, single_b, atol=1e-3)  # two different models: the mean is not trivial
    np.testing.assert_allclose(ensemble, (single_a + single_b) / 2, rtol=0, atol=1e-6)
    labels = labels_of(tmp_path / 'ab', 'head.nii.gz')
    assert 0 < labels.mean() < 1  # both classes predicted
    np.testing.assert_array_equal(labels, np.argmax(ensemble, axis=0))
    # One config per model (--model) is the same ensemble.
    argv = ['--model', str(CRANIUM), str(a), '--model', str(CRANIUM), str(b), '--input', str(scans), '--output',
            str(tmp_path / 'models'), '--device', 'cpu', '--batch-size', '4', *save, '--cfg-options', *options]
    assert main(argv) == 0
    np.testing.assert_array_equal(probabilities(tmp_path / 'models', 'head'), ensemble)


@pytest.mark.parametrize('tta, axis', [('flip', 0), ('flip2', 0), ('flip2', 1)])
def test_mirror_tta_is_equivariant(cranium, tmp_path, tta, axis):
    """The probabilities of the mirrored scan are exactly the mirrored probabilities of the scan (``flip``:
    left-right = the file's i axis here; ``flip2`` also anterior-posterior = j); without TTA they are not."""
    options, (a, _), scans = cranium
    img = nib.load(str(scans / 'head.nii.gz'))
    both = tmp_path / 'scans'
    both.mkdir()
    shutil.copy(scans / 'head.nii.gz', both / 'head.nii.gz')
    nib.save(nib.Nifti1Image(np.flip(np.asanyarray(img.dataobj), axis=axis).copy(), img.affine), str(both / 'mirror.nii.gz'))
    save = ['--save-probabilities', '--probabilities-dtype', 'float32']
    assert run_cli(CRANIUM, [a], options, tmp_path / 'tta', *save, '--tta', tta, source=both) == 0
    scan, mirrored = probabilities(tmp_path / 'tta', 'head'), probabilities(tmp_path / 'tta', 'mirror')
    np.testing.assert_array_equal(mirrored, np.flip(scan, axis=1 + axis))
    np.testing.assert_array_equal(labels_of(tmp_path / 'tta', 'mirror.nii.gz'),
                                  np.flip(labels_of(tmp_path / 'tta', 'head.nii.gz'), axis=axis))
    if tta == 'flip':
        assert run_cli(CRANIUM, [a], options, tmp_path / 'plain', *save, source=both) == 0
        plain, plain_mirrored = probabilities(tmp_path / 'plain', 'head'), probabilities(tmp_path / 'plain', 'mirror')
        assert np.abs(plain_mirrored - np.flip(plain, axis=1)).max() > 1e-3  # the model is not symmetric
        # flip TTA = the mean of the scan's and the mirrored scan's plain probabilities, mirrored back
        np.testing.assert_allclose(scan, (plain + np.flip(plain_mirrored, axis=1)) / 2, rtol=0, atol=1e-6)


def test_crossmoda_crop_probabilities_labels_names_and_affine(tmp_path):
    """A CrossMoDA model prepared with --crop: the saved probabilities (default float16) cover the source grid,
    voxels outside the crop window are background with probability 1, the labels are the argmax of the saved
    probabilities, the affine is the source file's, and the label file takes the case id (+ --label-suffix)."""
    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.synthetic import write_crossmoda_release

    size, crop = 40, 24
    write_crossmoda_release(tmp_path / 'raw', num_source=2, num_target=1, num_val=1, size=size, num_slices=4)
    prepare(CONVERTERS['crossmoda'](crop=crop), tmp_path / 'raw', tmp_path / 'data', workers=1, previews=0)
    options = tiny_overrides(tmp_path / 'data', scale=32, base_channels=8, workers=0)
    checkpoint = random_checkpoint(CROSSMODA, options, tmp_path / 'r.pth', 3)
    scans = tmp_path / 'raw/crossmoda_validation/target_validation'
    source = next(scans.glob('*_hrT2.nii.gz'))
    case = source.name[:-len('_hrT2.nii.gz')]
    (tmp_path / 'input').mkdir()
    shutil.copy(source, tmp_path / 'input' / source.name)
    shutil.copy(source, tmp_path / 'input' / f'{case}_Label.nii.gz')  # label-named: not a scan
    out = tmp_path / 'out'
    assert run_cli(CROSSMODA, [checkpoint], options, out, '--save-probabilities', '--label-suffix', '_Label',
                   source=tmp_path / 'input') == 0
    assert sorted(p.name for p in out.iterdir()) == [f'{case}.npz', f'{case}_Label.nii.gz', 'infer_volume.json']
    probs = probabilities(out, case)
    written, src = nib.load(str(out / f'{case}_Label.nii.gz')), nib.load(str(source))
    assert probs.dtype == np.float16 and probs.shape == (3,) + src.shape
    np.testing.assert_array_equal(written.affine, src.affine)
    labels = np.asanyarray(written.dataobj)
    np.testing.assert_array_equal(labels, np.argmax(probs, axis=0))
    # The synthetic files are stored R, A, S: the centred display window [8, 32) is [8, 32) in i and j too.
    off = (size - crop) // 2
    inside = np.zeros(src.shape[:2], bool)
    inside[off:off + crop, off:off + crop] = True
    outside = ~inside
    assert np.all(probs[0][outside] == 1) and np.all(probs[1:][:, outside] == 0) and np.all(labels[outside] == 0)
    np.testing.assert_allclose(probs[:, inside].astype(np.float32).sum(axis=0), 1.0, atol=3e-3)
    assert np.all(probs[0][inside] < 1)  # a random model is never certain: the fill is only outside


@pytest.fixture(scope='module')
def hemseg(tmp_path_factory):
    """A synthetic HemSeg release (flat RSNA DICOM folder, scan list, label zip), prepared, and a random model."""
    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.synthetic.hemseg import write_hemseg_release

    root = tmp_path_factory.mktemp('hemseg')
    write_hemseg_release(root / 'raw', num_scans=8, num_slices=4, size=32, seed=0)
    prepare(CONVERTERS['hemseg'](), root / 'raw', root / 'data', workers=1, previews=0)
    options = tiny_overrides(root / 'data', scale=32, base_channels=8, workers=0)
    return root, options, random_checkpoint(HEMSEG, options, root / 'r.pth', 4)


def test_data_split_reads_hemseg_from_its_raw_release(hemseg, tmp_path):
    """--data PREPARED --split test: one file per test case named by its scan id, read from the raw release
    through the converter (flat DICOM folder + scan list), equal slice for slice to inference_model on the
    PNGs prepare wrote, with the affine of the case's source-grid label (SimpleITK's, from the zip)."""
    from mmseg.apis import inference_model

    from mmseg_medical.inference import load_model
    from mmseg_medical.manifest import read_manifest, read_source_label

    root, options, checkpoint = hemseg
    data = root / 'data'
    test = split_cases(data, 'test')
    assert len(test) == 2
    out = tmp_path / 'out'
    assert run_cli(HEMSEG, [checkpoint], options, out, '--split', 'test', source_flag='--data', source=data) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f'{c}.nii.gz' for c in test), 'infer_volume.json'])
    model = load_model(load_config(HEMSEG, cfg_dict(options)), checkpoint)
    rows = read_manifest(data)
    predicted_any = False
    for case in test:
        written = read_nifti(out / f'{case}.nii.gz')
        label = read_source_label(data, case)
        assert written.array.shape == label.array.shape
        np.testing.assert_allclose(written.affine, label.affine, atol=1e-3)
        pred = to_display(written).array
        slices = sorted((r for r in rows if r.case_id == case), key=lambda r: r.slice_index)
        assert pred.shape[0] == len(slices)
        for r in slices:
            expected = inference_model(model, str(data / r.image)).pred_sem_seg.data[0].numpy()
            np.testing.assert_array_equal(pred[r.slice_index], expected, err_msg=r.image)
        predicted_any |= bool(pred.any())
    assert predicted_any

    # The release moved: dataset.json's "source" is gone; --src names its new place.
    moved = tmp_path / 'moved'
    shutil.copytree(root / 'raw', moved)
    shutil.move(str(root / 'raw'), str(root / 'raw.away'))
    try:
        assert run_cli(HEMSEG, [checkpoint], options, tmp_path / 'lost', '--split', 'test', source_flag='--data',
                       source=data) == 1
        assert not (tmp_path / 'lost').exists()
        assert run_cli(HEMSEG, [checkpoint], options, tmp_path / 'src', '--split', 'test', '--src', str(moved),
                       source_flag='--data', source=data) == 0
    finally:
        shutil.move(str(root / 'raw.away'), str(root / 'raw'))
    for case in test:
        np.testing.assert_array_equal(labels_of(tmp_path / 'src', f'{case}.nii.gz'), labels_of(out, f'{case}.nii.gz'))


def _two_class_names(path: Path, options: list) -> Path:
    return random_checkpoint(CRANIUM, options, path, 5, classes=('background', 'bleed'))


@pytest.mark.parametrize('case', ['mismatched classes', 'missing checkpoint', 'unknown split', 'config without checkpoint',
                                  'split without --data'])
def test_bad_inputs_one_line_exit_1_nothing_written(case, cranium, hemseg, tmp_path, capsys):
    options, (a, b), scans = cranium
    out = tmp_path / 'out'
    if case == 'mismatched classes':
        other = _two_class_names(tmp_path / 'other.pth', options)
        argv = [str(CRANIUM), str(a), str(other), '--input', str(scans)]
        expected = f"error: {other}: predicts classes ['background', 'bleed'], but {a} predicts ['background', " \
                   "'hemorrhage']: the models of an ensemble must have the same classes"
    elif case == 'missing checkpoint':
        argv = [str(CRANIUM), str(a), str(tmp_path / 'fold3.pth'), '--input', str(scans)]
        expected = f'error: {tmp_path / "fold3.pth"}: checkpoint file not found'
    elif case == 'unknown split':
        root, options, checkpoint = hemseg
        argv = [str(HEMSEG), str(checkpoint), '--data', str(root / 'data'), '--split', 'tset']
        expected = f"error: {root / 'data' / 'splits.json'}: no split 'tset'; the dataset has: "
    elif case == 'config without checkpoint':
        argv = ['--model', str(CRANIUM), '--model', str(CRANIUM), str(a), '--input', str(scans)]
        expected = f'error: {CRANIUM}: no checkpoint given for this config'
    else:
        argv = [str(CRANIUM), str(a), '--input', str(scans), '--split', 'test']
        expected = 'error: --split: goes with --data PREPARED'
    capsys.readouterr()
    assert main(argv + ['--output', str(out), '--device', 'cpu', '--cfg-options', *options]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert not out.exists() and not list(tmp_path.glob('.out*'))


def test_usage_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(CRANIUM), 'x.pth', '--input', 'scans', '--output', 'out', '--tta', 'rotate'])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --tta: invalid choice: 'rotate'"), err


def test_data_of_another_dataset_type_is_one_warning(cranium, hemseg, tmp_path, capsys):
    """A model whose config tests another dataset type (e.g. a COVID-19-CT-Seg model on MosMed) segments
    --data with that dataset's rules, saying so in one warning line."""
    options, (a, _), _ = cranium
    root = hemseg[0]
    capsys.readouterr()
    assert run_cli(CRANIUM, [a], options, tmp_path / 'out', '--split', 'test', source_flag='--data',
                   source=root / 'data') == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(('warning', 'error'))]
    assert err == [f'warning: {CRANIUM} tests on CraniumDataset; {root / "data"} was prepared by the hemseg converter '
                   '(HemSegDataset), whose rules make the slices']
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == sorted(
        [*(f'{c}.nii.gz' for c in split_cases(root / 'data', 'test')), 'infer_volume.json'])


def test_a_scan_failing_midway_leaves_no_output_and_no_new_folders(cranium, tmp_path, capsys):
    """The second of two scans is unreadable: one error line, exit 1, neither the first case's files nor the
    parent folders made for the output remain."""
    options, (a, _), scans = cranium
    both = tmp_path / 'scans'
    both.mkdir()
    shutil.copy(scans / 'head.nii.gz', both / 'a_head.nii.gz')
    (both / 'b_broken.nii.gz').write_bytes((scans / 'head.nii.gz').read_bytes()[:200])
    capsys.readouterr()
    assert run_cli(CRANIUM, [a], options, tmp_path / 'new' / 'deeper' / 'out', '--save-probabilities', source=both) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'error: {both / "b_broken.nii.gz"}: cannot read NIfTI'), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['scans']


def test_other_files_in_the_output_are_kept_named_and_not_scored(cranium, tmp_path, capsys):
    """infer_volume into a folder holding a stale prediction and a user's notes: both named in one warning, kept
    byte for byte, left out of infer_volume.json; evaluate_volumes then scores only the listed predictions (the
    stale one named in a warning), so it is never mixed into the scores silently."""
    from mmseg_medical.evaluation.cli import main as evaluate

    options, (a, _), scans = cranium
    out, gt = tmp_path / 'out', tmp_path / 'gt'
    out.mkdir()
    gt.mkdir()
    head = nib.load(str(scans / 'head.nii.gz'))
    stale = nib.Nifti1Image(np.ones(head.shape, np.uint8), head.affine)  # "hemorrhage everywhere", of case old
    nib.save(stale, str(out / 'old.nii.gz'))
    (out / 'notes.txt').write_text('my notes\n')
    kept = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert run_cli(CRANIUM, [a], options, out, source=scans) == 0
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith(('warning', 'error'))]
    assert warnings == [f'warning: {out}: 2 file(s) here were not written by this run and are left as they are, not '
                        'deleted (evaluate_volumes scores only the files listed in infer_volume.json): notes.txt, '
                        'old.nii.gz']
    assert {name: (out / name).read_bytes() for name in kept} == kept
    assert json.loads((out / 'infer_volume.json').read_text())['files'] == ['head.nii.gz']

    shutil.copy(out / 'head.nii.gz', gt / 'head.nii.gz')   # the truth: the prediction itself (Dice 1 or both empty)
    nib.save(stale, str(gt / 'old.nii.gz'))                # a truth the stale file would match perfectly
    argv = ['--pred', str(out), '--gt', str(gt), '--out', str(tmp_path / 'm.csv'), '--bootstrap', '0', '--classes', '1']
    assert evaluate(argv) == 1                             # case old has no prediction of this run
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f'warning: {out}: 1 prediction file(s) not written by the last infer_volume run into this folder '
                      '(not in its infer_volume.json) are not scored: old.nii.gz')
    assert err[1] == f"error: {gt / 'old.nii.gz'}: no prediction for case 'old' in {out}"
    (gt / 'old.nii.gz').unlink()
    assert evaluate(argv) == 0
    with open(tmp_path / 'm.csv') as f:
        assert [row['case'] for row in csv.DictReader(f)] == ['head']


SIGMOID = REPO / 'configs/cranium/fcn-unet-s5-d16-sigmoid_unet_1xb16-0.01-20k_cranium-512x512.py'


def test_sigmoid_head_threshold_probabilities_and_mmseg(cranium, cranium_data, tmp_path):
    """The shipped one-channel sigmoid config through infer_volume: the saved probabilities are [1 - p, p] with p
    mmseg's own sigmoid output (``inference_model(...).seg_logits`` on the prepared PNGs of a val case), the labels
    are ``p > threshold`` as mmseg decides (``pred_sem_seg``), for the config's 0.5 and for a threshold set by
    ``--cfg-options`` at the median p (so that both labels occur)."""
    import cv2
    from mmseg.apis import inference_model

    from mmseg_medical.inference import load_model
    from mmseg_medical.manifest import read_manifest

    options = cranium[0]
    checkpoint = random_checkpoint(SIGMOID, options, tmp_path / 'sigmoid.pth', 3)
    rows = [r for r in read_manifest(cranium_data) if r.split == 'val']
    case = rows[0].case_id
    rows = sorted((r for r in rows if r.case_id == case), key=lambda r: r.slice_index)
    scan = next((cranium_data.parent / 'raw').rglob(f'ct_scans/{case}.nii'))
    save = ['--save-probabilities', '--probabilities-dtype', 'float32']
    assert run_cli(SIGMOID, [checkpoint], options, tmp_path / 'half', *save, source=scan) == 0
    probs = probabilities(tmp_path / 'half', case)
    assert probs.shape == (2,) + nib.load(str(scan)).shape
    np.testing.assert_allclose(probs[0] + probs[1], 1.0, atol=1e-6)

    # mmseg on the PNGs prepare wrote (display orientation), the same model
    model = load_model(load_config(SIGMOID, cfg_dict(options)), checkpoint, 'cpu')
    from mmseg_medical.volume import Volume
    p_display = to_display(Volume(np.ascontiguousarray(np.transpose(probs[1], (2, 1, 0))),   # (Z, H, W) as stored
                                  affine=read_nifti(scan).affine)).array
    mmseg_p, mmseg_labels = [], []
    for r in rows:
        result = inference_model(model, str(cranium_data / r.image))
        mmseg_p.append(result.seg_logits.data[0].numpy())
        mmseg_labels.append(result.pred_sem_seg.data[0].numpy())
        assert cv2.imread(str(cranium_data / r.image)).shape[:2] == mmseg_p[-1].shape
    mmseg_p, mmseg_labels = np.stack(mmseg_p), np.stack(mmseg_labels)
    assert mmseg_p.shape == p_display.shape
    np.testing.assert_allclose(p_display, mmseg_p, atol=1e-5)
    labels = labels_of(tmp_path / 'half', f'{case}.nii.gz')
    decided = probs[1] > 0.5
    clear = np.abs(probs[1] - 0.5) > 1e-5                          # away from the threshold: no rounding question
    np.testing.assert_array_equal(labels[clear], decided[clear])
    labels_display = to_display(read_nifti(tmp_path / 'half' / f'{case}.nii.gz')).array
    clear_display = np.abs(mmseg_p - 0.5) > 1e-5
    np.testing.assert_array_equal(labels_display[clear_display], mmseg_labels[clear_display])

    threshold = float(np.median(probs[1]))
    assert run_cli(SIGMOID, [checkpoint], [*options, f'model.decode_head.threshold={threshold!r}'],
                   tmp_path / 'median', *save, source=scan) == 0
    labels = labels_of(tmp_path / 'median', f'{case}.nii.gz')
    clear = np.abs(probs[1] - threshold) > 1e-5
    np.testing.assert_array_equal(labels[clear], (probs[1] > threshold)[clear])
    assert 0 < labels.mean() < 1
    np.testing.assert_array_equal(probabilities(tmp_path / 'median', case), probs)  # the threshold moves labels only


def test_an_ensemble_refuses_to_mix_sigmoid_and_softmax_models(cranium, tmp_path, capsys):
    options, (softmax_checkpoint, _), scans = cranium
    sigmoid_checkpoint = random_checkpoint(SIGMOID, options, tmp_path / 'sigmoid.pth', 3)
    capsys.readouterr()
    argv = ['--model', str(SIGMOID), str(sigmoid_checkpoint), '--model', str(CRANIUM), str(softmax_checkpoint),
            '--input', str(scans), '--output', str(tmp_path / 'out'), '--device', 'cpu', '--cfg-options', *options]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'error: {softmax_checkpoint}: decides labels by argmax, but {sigmoid_checkpoint} by a sigmoid '
                   'threshold of 0.5: the models of an ensemble must decide labels the same way']
    assert not (tmp_path / 'out').exists()


def _kill_when(process, ready, timeout: float = 120.0) -> bool:
    """SIGKILL ``process`` as soon as ``ready()`` holds; False if it ended first."""
    import signal
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end and process.poll() is None:
        if ready():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.005)
    process.kill()
    process.wait()
    return False


def test_sigkill_midway_then_a_rerun_leaves_no_staging_and_a_complete_output(cranium, tmp_path):
    """tools/infer_volume.py SIGKILLed while it writes its staging folder (some cases written, not moved): the
    staging folder is left (nothing could remove it) and OUT does not exist; a re-run removes it and writes every
    case, equal to an uninterrupted run's files."""
    import subprocess
    import sys

    options, (a, _), scans = cranium
    many = tmp_path / 'scans'
    many.mkdir()
    for k in range(12):
        shutil.copy(scans / 'head.nii.gz', many / f'head{k:02d}.nii.gz')
    out = tmp_path / 'out'
    argv = [sys.executable, str(REPO / 'tools/infer_volume.py'), str(CRANIUM), str(a), '--input', str(many),
            '--output', str(out), '--device', 'cpu', '--batch-size', '1', '--cfg-options', *options]

    def staged() -> list:
        return [p for p in tmp_path.glob('.out.infer-*') if any(p.iterdir())]

    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _kill_when(process, lambda: bool(staged())), 'infer_volume finished before the kill'
    assert len(list(tmp_path.glob('.out.infer-*'))) == 1 and not out.exists()    # what the kill left
    assert main(argv[2:]) == 0                                                     # the re-run
    assert list(tmp_path.glob('.out.infer-*')) == []
    assert sorted(p.name for p in out.iterdir()) == [f'head{k:02d}.nii.gz' for k in range(12)] + ['infer_volume.json']
    assert run_cli(CRANIUM, [a], options, tmp_path / 'reference', source=scans) == 0
    for k in range(12):
        np.testing.assert_array_equal(labels_of(out, f'head{k:02d}.nii.gz'), labels_of(tmp_path / 'reference', 'head.nii.gz'))
