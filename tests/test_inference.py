"""tools/infer_volume.py: NIfTI / DICOM scans → slice-by-slice predictions → NIfTI label maps."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation import case_metrics
from mmseg_medical.inference import DICOM, NIFTI, find_inputs, intensity_for, load_config, load_model
from mmseg_medical.inference_cli import build_parser, main
from mmseg_medical.intensity import WINDOWS
from mmseg_medical.io import read_nifti
from mmseg_medical.manifest import read_manifest
from mmseg_medical.orientation import to_display
from mmseg_medical.runs import last_checkpoint, mim_train, run, tiny_overrides
from mmseg_medical.synthetic import cranium_patient, write_dicom_series

REPO = Path(__file__).resolve().parents[1]
# The class-imbalance config (CE + per-class Dice, foreground oversampling): it learns the phantom's
# hemorrhage in a couple of hundred iterations, where the plain cross-entropy config still predicts nothing.
CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16-ce-1.0-dice-3.0_unet_1xb16-0.01-20k_cranium-512x512.py'
ITERS = 200


@pytest.fixture(scope='module')
def trained(cranium_data, tmp_path_factory):
    """``(cfg_options, checkpoint)``: a tiny UNet trained for ITERS iterations (64², ~20 s on 2 cores)."""
    work = tmp_path_factory.mktemp('infer')
    options = tiny_overrides(cranium_data, scale=64, iters=ITERS, workers=0)
    run(mim_train(CONFIG, work / 'train', options, ['--gpus', '0']), log=work / 'train.log', cwd=REPO)
    return options, last_checkpoint(work / 'train')


def infer_argv(options, ckpt, source, out, config: Path = CONFIG) -> list:
    argv = [str(config), str(ckpt), '--input', str(source), '--output', str(out), '--batch-size', '4',
            '--device', 'cpu']
    return argv + (['--cfg-options', *options] if options else [])


def sitk_affine(series: Path, tmp: Path) -> np.ndarray:
    """The NIfTI affine SimpleITK gives a DICOM series (read with GDCM, written by ITK's NIfTI writer)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    sitk.WriteImage(reader.Execute(), str(tmp / 'sitk.nii.gz'))
    return nib.load(str(tmp / 'sitk.nii.gz')).affine


def test_nifti_and_dicom_scans(trained, tmp_path, capsys):
    ct, mask = cranium_patient(8, num_slices=6, size=64, seed=0)  # not one of the 6 training patients
    assert mask.array.any()
    scans = tmp_path / 'scans'
    scans.mkdir()
    sx, sy, sz = ct.spacing
    # RAS storage, as the synthetic release writes it (display = columns and rows reversed).
    affine = np.array([[sx, 0, 0, 14.5], [0, sy, 0, -120.0], [0, 0, sz, 35.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(ct.nifti_array(), affine)
    img.set_sform(affine, code=2)
    img.set_qform(affine, code=1)
    nib.save(img, str(scans / 'head.nii.gz'))
    # The same anatomy as a DICOM series stored in display order (rows along P, columns along L, rotated
    # 37 degrees in plane: its nearest axes are still L, P, S, so no reorientation).
    display = np.ascontiguousarray(ct.array[:, ::-1, ::-1])
    write_dicom_series(display, scans / 'series_a', spacing=ct.spacing, origin=(12.5, -80.0, 40.0),
                       orientation=(0.8, 0.6, 0.0, -0.6, 0.8, 0.0), seed=3)
    (scans / 'notes.txt').write_text('not a scan')

    options, checkpoint = trained
    assert main(infer_argv(options, checkpoint, scans, tmp_path / 'out') + ['--save-probabilities']) == 0
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['head.nii.gz', 'head.npz', 'infer_volume.json',
                                                                    'series_a.nii.gz', 'series_a.npz']
    assert 'error' not in capsys.readouterr().err

    from_nifti = nib.load(str(tmp_path / 'out/head.nii.gz'))
    assert from_nifti.shape == img.shape and from_nifti.get_data_dtype() == np.uint8
    assert np.array_equal(from_nifti.affine, img.affine)
    assert from_nifti.get_sform(coded=True)[1] == 2 and from_nifti.get_qform(coded=True)[1] == 1
    from_dicom = nib.load(str(tmp_path / 'out/series_a.nii.gz'))
    assert from_dicom.shape == img.shape
    np.testing.assert_allclose(from_dicom.affine, sitk_affine(scans / 'series_a', tmp_path), atol=1e-4)

    pred = np.asanyarray(from_nifti.dataobj)
    assert set(np.unique(pred)) == {0, 1}
    # Same HU in display order: the DICOM copy gets the same labels, in its own voxel order (i, j reversed).
    assert np.array_equal(np.asanyarray(from_dicom.dataobj), pred[::-1, ::-1, :])
    for case, labels in (('head', pred), ('series_a', np.asanyarray(from_dicom.dataobj))):
        with np.load(tmp_path / 'out' / f'{case}.npz') as f:
            probabilities = f['probabilities']
        assert probabilities.dtype == np.float16 and probabilities.shape == (2,) + img.shape
        assert np.array_equal(labels, np.argmax(probabilities, axis=0))  # the labels are their argmax
        np.testing.assert_allclose(probabilities.astype(np.float32).sum(axis=0), 1.0, atol=2e-3)
    # The written labels are scored as they stand (no outcome threshold, which would move with torch): Dice by
    # hand against the phantom's mask equals case_metrics' on the same arrays.
    truth, guess = mask.nifti_array() == 1, pred == 1
    by_hand = 2.0 * np.count_nonzero(truth & guess) / (np.count_nonzero(truth) + np.count_nonzero(guess))
    dice = case_metrics(mask.nifti_array(), pred, ct.spacing, [1])[0]['dice']
    print(f'\ntiny model ({ITERS} iterations at 64²) hemorrhage Dice on unseen phantom patient 8: {dice:.3f}')
    assert dice == pytest.approx(by_hand, abs=1e-12)


def test_slices_match_inference_on_prepared_pngs(trained, cranium_data, tmp_path):
    """A raw val scan gives, slice for slice, what inference_model gives for its prepared PNGs."""
    import cv2
    from mmseg.apis import inference_model

    options, checkpoint = trained
    rows = [r for r in read_manifest(cranium_data) if r.split == 'val']
    case = rows[0].case_id
    rows = sorted((r for r in rows if r.case_id == case), key=lambda r: r.slice_index)
    scan = next((cranium_data.parent / 'raw').rglob(f'ct_scans/{case}.nii'))
    argv = infer_argv(options, checkpoint, scan, tmp_path / 'out')
    assert main(argv) == 0
    pred = to_display(read_nifti(tmp_path / 'out' / f'{case}.nii.gz')).array
    assert pred.shape == (len(rows), 64, 64)
    assert pred.any() and not pred.all()  # the model finds the hemorrhage: equalities below are not trivial

    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    pngs = np.stack([cv2.imread(str(cranium_data / r.image), cv2.IMREAD_UNCHANGED) for r in rows])
    assert np.array_equal(intensity_for(cfg)(to_display(read_nifti(scan))), pngs)
    model = load_model(cfg, args.checkpoints[0], 'cpu')
    for r in rows:
        expected = inference_model(model, str(cranium_data / r.image)).pred_sem_seg.data[0].numpy()
        assert np.array_equal(pred[r.slice_index], expected), r.image


def test_window_comes_from_dataset_json(tmp_path):
    root = tmp_path / 'data'
    root.mkdir()
    (root / 'dataset.json').write_text(json.dumps({'name': 'cranium', 'settings': {
        'seed': 0, 'val_fraction': 0.2, 'folds': None, 'layout': 'nifti', 'window': 'bone'}}))
    cfg = load_config(CONFIG, {'test_dataloader.dataset.data_root': str(root)})
    ct, _ = cranium_patient(0, num_slices=2, size=32)
    assert np.array_equal(intensity_for(cfg)(ct), WINDOWS['bone'](ct.array))
    assert not np.array_equal(WINDOWS['bone'](ct.array), WINDOWS['brain'](ct.array))
    no_card = load_config(CONFIG, {'test_dataloader.dataset.data_root': str(tmp_path / 'elsewhere')})
    # No dataset.json: the converter's default, the release's JPG window (level 40 / width 120, by hand).
    by_hand = np.clip(np.rint((ct.array.astype(np.float64) + 20.0) * 255.0 / 120.0), 0, 255).astype(np.uint8)
    assert np.array_equal(intensity_for(no_card)(ct), by_hand)
    (root / 'dataset.json').write_text(json.dumps({'name': 'other', 'settings': {}}))
    with pytest.raises(MedSegError, match="prepared by converter 'other'"):
        intensity_for(cfg)


def test_find_inputs(tmp_path):
    ct, _ = cranium_patient(0, num_slices=2, size=32)
    series = tmp_path / 'ser'
    write_dicom_series(ct.array, series, spacing=ct.spacing)
    assert find_inputs(series) == [('ser', DICOM, series)]
    nib.save(nib.Nifti1Image(ct.nifti_array(), np.eye(4)), str(tmp_path / 'a.nii'))
    assert find_inputs(tmp_path / 'a.nii') == [('a', NIFTI, tmp_path / 'a.nii')]
    assert find_inputs(tmp_path) == [('a', NIFTI, tmp_path / 'a.nii'), ('ser', DICOM, series)]
    nib.save(nib.Nifti1Image(ct.nifti_array(), np.eye(4)), str(tmp_path / 'ser.nii.gz'))
    with pytest.raises(MedSegError, match="case 'ser' is also given by"):
        find_inputs(tmp_path)
    with pytest.raises(MedSegError, match='not a NIfTI file'):
        find_inputs(series / next(p.name for p in series.iterdir()))


def test_find_inputs_below_a_release_folder(tmp_path):
    """Scans at any depth (``ct_scans/`` of a release, a DICOM series two levels down); label files and
    folders, hidden entries and other files are not scans; a DICOM series folder is not searched further."""
    ct, _ = cranium_patient(0, num_slices=2, size=32)
    top = tmp_path / 'download'
    release = top / 'computed-tomography-images-for-intracranial-hemorrhage-detection-and-segmentation-1.0.0'
    for path in ('ct_scans/049.nii', 'masks/049.nii', 'ct_scans/crossmoda_1_Label.nii.gz', 'labelsTr/x.nii.gz',
                 'Lung_Mask/y.nii.gz', '.cache/z.nii.gz', 'ct_scans/051_seg.nii.gz', 'segmentations/a.nii.gz',
                 'GT/b.nii.gz', 'label.nii.gz'):
        (release / path).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(ct.nifti_array(), np.eye(4)), str(release / path))
    series = release / 'site_b' / 'patient_7' / 'CT_head'
    write_dicom_series(ct.array, series, spacing=ct.spacing)
    write_dicom_series(ct.array, series / 'inner', spacing=ct.spacing)  # inside a series: not searched
    (release / 'README.txt').write_text('x')
    assert find_inputs(top) == [('049', NIFTI, release / 'ct_scans/049.nii'), ('CT_head', DICOM, series)]
    nib.save(nib.Nifti1Image(ct.nifti_array(), np.eye(4)), str(release / 'site_b' / '049.nii.gz'))
    with pytest.raises(MedSegError, match=f"case '049' is also given by {release / 'ct_scans/049.nii'}"):
        find_inputs(top)


def _bad_config(tmp_path: Path) -> Path:
    path = tmp_path / 'ade_config.py'
    path.write_text(f"_base_ = [{str(CONFIG)!r}]\ntest_dataloader = dict(dataset=dict(type='ADE20KDataset'))\n")
    return path


@pytest.mark.parametrize('case', ['missing input', 'nothing readable', 'dataset without converter',
                                  'checkpoint of another model size'])
def test_errors_one_line_exit_1_no_output(case, trained, tmp_path, capsys):
    options, checkpoint = trained
    source, config, ckpt = tmp_path / 'scan.nii.gz', CONFIG, checkpoint
    if case == 'missing input':
        expected = f'error: {source}: input not found'
    elif case == 'nothing readable':
        source = tmp_path / 'folder'
        (source / 'empty').mkdir(parents=True)
        (source / 'notes.txt').write_text('x')
        (source / 'image.jpg').write_bytes(b'\xff\xd8')
        expected = f'error: {source}: nothing to segment'
    else:
        ct, _ = cranium_patient(0, num_slices=2, size=32)
        nib.save(nib.Nifti1Image(ct.nifti_array(), np.eye(4)), str(source))
        if case == 'dataset without converter':
            config = _bad_config(tmp_path)
            expected = f"error: {config}: dataset type 'ADE20KDataset' has no converter"
        else:  # the 16-channel checkpoint without the --cfg-options it was trained with
            options = None
            expected = f'error: {ckpt}: does not fit the model built from the config'
    capsys.readouterr()
    out = tmp_path / 'out'
    assert main(infer_argv(options, ckpt, source, out, config)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert not out.exists()
    assert not list(tmp_path.glob('.out*'))


def test_postprocess_rules_remove_a_speck(trained, tmp_path, capsys):
    """--postprocess: a class-1 component smaller than the rule is removed from the written labels."""
    from mmseg_medical.evaluation.postprocess import save_rules
    ct, mask = cranium_patient(8, num_slices=6, size=64, seed=0)
    nib.save(nib.Nifti1Image(ct.nifti_array(), np.diag([*ct.spacing, 1.0])), str(tmp_path / 'head.nii.gz'))
    options, checkpoint = trained
    assert main(infer_argv(options, checkpoint, tmp_path / 'head.nii.gz', tmp_path / 'raw')) == 0
    raw = np.asanyarray(nib.load(str(tmp_path / 'raw/head.nii.gz')).dataobj)
    from scipy import ndimage
    labelled, n = ndimage.label(raw == 1)
    assert n >= 1
    sizes = np.bincount(labelled.ravel())[1:]
    rules = save_rules(tmp_path / 'pp.json', {1: int(sizes.max()) + 1})     # removes every component
    argv = infer_argv(options, checkpoint, tmp_path / 'head.nii.gz', tmp_path / 'pp') + ['--postprocess', str(rules)]
    assert main(argv) == 0
    assert not np.asanyarray(nib.load(str(tmp_path / 'pp/head.nii.gz')).dataobj).any()
    (tmp_path / 'bad.json').write_text('{}')
    capsys.readouterr()
    argv = infer_argv(options, checkpoint, tmp_path / 'head.nii.gz', tmp_path / 'x') + ['--postprocess', str(tmp_path / 'bad.json')]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(f'error: {tmp_path / "bad.json"}: not a post-processing file')


def test_a_jpg_layout_dataset_gives_scans_its_training_slices(tmp_path):
    """A model trained on the JPG layout: infer_volume's slices of a patient's NIfTI scan (display
    convention + the dataset.json intensity) equal that patient's prepared JPG-layout PNGs up to JPEG noise."""
    import cv2

    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.synthetic import write_cranium_release

    write_cranium_release(tmp_path / 'raw', num_patients=3, num_slices=4, size=48, seed=0)
    prepare(CONVERTERS['cranium'](layout='jpg'), tmp_path / 'raw', tmp_path / 'jpg', workers=1, previews=0)
    cfg = load_config(CONFIG, {'test_dataloader.dataset.data_root': str(tmp_path / 'jpg')})
    scan = read_nifti(next((tmp_path / 'raw').rglob('ct_scans/050.nii')))
    slices = intensity_for(cfg)(to_display(scan))
    pngs = np.stack([cv2.imread(str(tmp_path / 'jpg' / 'images' / f'050_{k:04d}.png'), cv2.IMREAD_UNCHANGED)
                     for k in range(4)])
    diff = np.abs(slices.astype(int) - pngs.astype(int)).mean()
    flipped = np.abs(intensity_for(cfg)(scan).astype(int) - pngs.astype(int)).mean()   # stored (RAS) order
    assert diff < 4 and flipped > 3 * diff


def test_readme_cpu_sized_example_uses_the_config_that_learns_at_that_size(repo_root):
    """The README's CPU-sized example trains, tests and segments with CONFIG, the config ``trained`` above shows
    learning at that size (Dice >= 0.7 on an unseen phantom after ITERS iterations at 64²); the plain
    cross-entropy config predicts no hemorrhage there, and every example downstream would give Dice 0."""
    import re

    text = (repo_root / 'README.md').read_text()
    section = text[text.index('### A CPU-sized run: one line'):]
    section = section[:section.index('\n### ', 1)]
    assert set(re.findall(r'configs/(?!_base_)\S+?\.py', section)) == {CONFIG.relative_to(REPO).as_posix()}
