"""``prepare_dataset.py msd``: the Decathlon's 4D multi-modality images, checked against nibabel by hand."""
import json

import cv2
import nibabel as nib
import numpy as np
import pytest

from mmseg_medical.conversion.cli import main
from mmseg_medical.synthetic.nnunet import write_msd_release


@pytest.fixture(scope='module')
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp('msd')
    release = write_msd_release(root / 'raw', num_training=4, num_test=1, shape=(4, 12, 14))
    assert main(['msd', '--src', str(release), '--out', str(root / 'out'), '--workers', '1', '--previews', '0']) == 0
    return release, root / 'out'


def stack(folder, case):
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob(f'{case}_*.png'))])


def test_modalities_are_channels_and_labels_classes(task):
    release, out = task
    card = json.loads((out / 'dataset.json').read_text())
    assert card['channels'] == ['FLAIR', 'T1w', 'T1gd', 'T2w']
    assert card['classes'] == ['background', 'edema', 'non-enhancing tumor', 'enhancing tumour']
    assert [p.name for p in sorted(out.glob('images_*'))] == ['images_0001', 'images_0002', 'images_0003']
    assert json.loads((out / 'splits.json').read_text())['test'] == ['braintumour_005']


def test_4d_channels_by_hand(task):
    """Volume c of the 4D NIfTI (nibabel ``dataobj[..., c]``) is channel c; the affine is LPS voxel order, so the
    display slices are the (k, j, i) transpose."""
    release, out = task
    img = nib.load(str(release / 'imagesTr' / 'braintumour_002.nii.gz'))
    assert ''.join(nib.aff2axcodes(img.affine)) == 'LPS'
    data = np.asarray(img.dataobj)
    label = np.asarray(nib.load(str(release / 'labelsTr' / 'braintumour_002.nii.gz')).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(stack(out / 'masks', 'braintumour_002'), label)
    for c, folder in enumerate(['images', 'images_0001', 'images_0002', 'images_0003']):
        pngs = stack(out / folder, 'braintumour_002').astype(float)
        corr = np.corrcoef(pngs.ravel(), data[..., c].transpose(2, 1, 0).ravel())[0, 1]
        assert corr > 0.95, (c, corr)


def test_wrong_channel_count_is_one_error(tmp_path, capsys):
    release = write_msd_release(tmp_path / 'raw', num_training=2, num_test=0, shape=(3, 8, 10))
    card = json.loads((release / 'dataset.json').read_text())
    card['modality'] = {'0': 'FLAIR', '1': 'T1w'}
    (release / 'dataset.json').write_text(json.dumps(card))
    code = main(['msd', '--src', str(release), '--out', str(tmp_path / 'out'), '--workers', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and '4 channel(s) in the image, 2 in dataset.json' in err[0]
    assert not (tmp_path / 'out').exists()


def test_training_entry_missing_file(tmp_path, capsys):
    release = write_msd_release(tmp_path / 'raw', num_training=2, num_test=0, shape=(3, 8, 10))
    (release / 'labelsTr' / 'braintumour_001.nii.gz').unlink()
    code = main(['msd', '--src', str(release), '--out', str(tmp_path / 'out'), '--workers', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and 'braintumour_001.nii.gz: listed in dataset.json' in err[0]
