"""2.5D models at inference: ``infer_volume`` (from the raw scan) and ``pseudo_label`` (from the slice store)
stack each slice's neighbours as the training pipeline's ``LoadSliceStack`` does.

Checked against mmseg's own ``inference_model`` run on the slice PNGs with the config's test pipeline
(``LoadSliceStack`` reading the neighbours from the store through the manifest): the labels ``infer_volume``
writes (mapped to display order) and those ``pseudo_label`` derives equal mmseg's, slice for slice, for a
randomly initialised 3-channel model (the property holds for any weights).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmseg_medical.inference import Predictor, load_config, load_model
from mmseg_medical.io import read_nifti
from mmseg_medical.manifest import read_manifest
from mmseg_medical.orientation import to_display
from mmseg_medical.restacking import split_cases
from mmseg_medical.runs import tiny_overrides


def _ensemble_helpers():
    """cfg_dict, random_checkpoint and run_cli of test_inference_ensemble.py (pytest's importlib mode does not
    put tests/ on the path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('inference_ensemble_helpers',
                                                  Path(__file__).with_name('test_inference_ensemble.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cfg_dict, module.random_checkpoint, module.run_cli


cfg_dict, random_checkpoint, run_cli = _ensemble_helpers()

REPO = Path(__file__).resolve().parents[1]
CRANIUM_25D = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-2.5d-512x512.py'


@pytest.fixture(scope='module')
def model_25d(cranium_data, tmp_path_factory):
    options = tiny_overrides(cranium_data, scale=64, base_channels=8, workers=0)
    checkpoint = random_checkpoint(CRANIUM_25D, options, tmp_path_factory.mktemp('m25') / 'r.pth', 7)
    return options, checkpoint, load_model(load_config(CRANIUM_25D, cfg_dict(options)), checkpoint)


def _mmseg_labels(model, data: Path, case: str) -> np.ndarray:
    from mmseg.apis import inference_model

    rows = sorted((r for r in read_manifest(data) if r.case_id == case), key=lambda r: r.slice_index)
    return np.stack([inference_model(model, str(data / r.image)).pred_sem_seg.data[0].numpy() for r in rows])


def test_infer_volume_stacks_neighbours_as_load_slice_stack(cranium_data, model_25d, tmp_path):
    options, checkpoint, model = model_25d
    case = split_cases(cranium_data, 'val')[0]
    out = tmp_path / 'out'
    assert run_cli(CRANIUM_25D, [checkpoint], options, out, '--split', 'val', source_flag='--data',
                   source=cranium_data) == 0
    written = to_display(read_nifti(out / f'{case}.nii.gz')).array
    expected = _mmseg_labels(model, cranium_data, case)
    np.testing.assert_array_equal(written, expected)
    assert 0 < expected.mean() < 1          # both classes predicted: a comparison of real label maps


def test_predictor_needs_the_scan_for_a_2_5d_model(model_25d):
    from mmseg_medical.errors import MedSegError

    predictor = Predictor([model_25d[2]])
    assert predictor.stacks
    with pytest.raises(MedSegError, match='2.5D model'):
        list(predictor.slice_probabilities([np.zeros((64, 64), np.uint8)]))


def test_pseudo_label_stacks_from_the_slice_store(cranium_data, model_25d, tmp_path):
    from mmseg_medical.pseudo_label import _predict

    options, checkpoint, model = model_25d
    case = split_cases(cranium_data, 'val')[0]
    rows = sorted((r for r in read_manifest(cranium_data) if r.case_id == case), key=lambda r: r.slice_index)
    predictor = Predictor([model])
    labels = np.stack([lab for lab, _ in _predict(predictor, cranium_data, [cranium_data / r.image for r in rows])])
    np.testing.assert_array_equal(labels, _mmseg_labels(model, cranium_data, case))
