"""A synthetic HemSeg release: RSNA-like flat DICOM folder, scan list (jsonl), label zip, split CSVs.

:func:`write_hemseg_release` writes phantom head CTs in the real layout (RSNA Intracranial Hemorrhage
Detection ``stage_2_train/``; github.com/songchangwei/3DCT-SD-IVH-ICH for the jsonl, zip and CSVs)::

    <root>/stage_2_train/ID_<9 hex>.dcm        every scan's slices in one flat folder, shuffled names
    <root>/annotion_file_info.jsonl            {"patient", "scan_", "slice_list"} (or the _500 variant)
    <root>/IPH_IVH_label.zip                   IPH_IVH_label/{train,val,test}/label/<scan>.nii.gz
    <root>/HemSeg-500.zip                      HemSeg-500/{train,val,test}/label/<scan>.nii.gz (archives '500'/'both')
    <root>/{train,val,test}_set.csv            filename,label

With HemSeg-500 in the release (``scan_list`` or ``archives`` ``'500'``/``'both'``), HemSeg-200 is the subset of
the first :func:`hemseg200_count` scans, as the real 222 of 525: ``IPH_IVH_label.zip`` and
``annotion_file_info.jsonl`` hold only them, ``HemSeg-500.zip`` and ``annotion_file_info_500.jsonl`` all scans.
``HemSeg-500.zip``'s folders are the split CSVs'; its HemSeg-200 members are byte-identical to those of
``IPH_IVH_label.zip``, whose folders put scan 2 in ``test`` instead of ``val`` (the real folder split and CSVs
disagree for 135 of the 222 scans).

Scans alternate the two RSNA header variants (PixelRepresentation 1 / BitsStored 16 with a single
WindowCenter; PixelRepresentation 0 / BitsStored 12 with a multi-valued one); scan 1 is gantry tilted
(22 degrees, positions along the slice normal 5.0 / cos(22°) = 5.39 mm apart, i.e. 5 mm table steps in z,
as the real label ``08154d6b7b``).
Labels are written the way the real ones were: the series read with SimpleITK's series reader, the mask
given that image's geometry, written by SimpleITK (int16). The first patient has scans in two splits,
as 8 real patients do.
"""
from __future__ import annotations

import csv
import json
import math
import zipfile
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from .dicom import write_dicom_series
from .phantom import head_ct_phantom, phantom_spacing

DICOM_DIR = 'stage_2_train'
JSONL_200, JSONL_500 = 'annotion_file_info.jsonl', 'annotion_file_info_500.jsonl'
LABEL_ZIP, LABEL_DIR = 'IPH_IVH_label.zip', 'IPH_IVH_label'
LABEL_ZIP_500, LABEL_DIR_500 = 'HemSeg-500.zip', 'HemSeg-500'
#: Share of HemSeg-500's scans in HemSeg-200 (222 of 525), rounded up.
HEMSEG200_SHARE = 222 / 525
#: With both versions written, the scan whose HemSeg-200 label folder differs from the split CSVs (and to which).
MOVED_IN_200 = (2, 'test')
#: Official split of scan ``i``: cycles train, train, val, test, ...; scan 3 (test) shares scan 0's patient.
SPLIT_CYCLE = ('train', 'train', 'val', 'test')
TILT_DEGREES = 22.0
TILTED_SCAN = 1


def _hex(rng: np.random.Generator, digits: int) -> str:
    return f'{int(rng.integers(0, 16 ** digits)):0{digits}x}'


def hemseg_scan_layout(num_scans: int, seed: int = 0) -> List[dict]:
    """Per scan: ``scan`` (10 hex), ``patient`` (``ID_`` + 8 hex), official ``split``, ``signed`` variant,
    ``tilt`` (degrees). Scan 3 belongs to scan 0's patient (two splits); scan 5 to scan 4's (same split)."""
    rng = np.random.default_rng([seed, 500])
    scans: List[dict] = []
    for i in range(num_scans):
        patient = scans[i - 3]['patient'] if i == 3 else scans[i - 1]['patient'] if i == 5 else f'ID_{_hex(rng, 8)}'
        scans.append({'scan': _hex(rng, 10), 'patient': patient, 'split': SPLIT_CYCLE[i % len(SPLIT_CYCLE)],
                      'signed': i % 2 == 0, 'tilt': TILT_DEGREES if i == TILTED_SCAN else 0.0})
    return scans


def hemseg200_count(num_scans: int) -> int:
    """How many of a HemSeg-500 release's first scans form its HemSeg-200 subset (at least one)."""
    return max(1, math.ceil(HEMSEG200_SHARE * num_scans))


def _single_window(paths: List[Path]) -> None:
    """Rewrite the headers as RSNA's signed variant has them: one WindowCenter / WindowWidth value."""
    import pydicom

    for path in paths:
        ds = pydicom.dcmread(str(path))
        ds.WindowCenter, ds.WindowWidth = '40', '80'
        ds.save_as(str(path))


def _sitk_label(files: List[Path], label_zhw: np.ndarray, out: Path) -> None:
    """Write ``label_zhw`` with the geometry SimpleITK's series reader gives ``files`` (as HemSeg did);
    ``files`` must be the only series in their folder."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(files[0].parent)))
    image = reader.Execute()
    label = sitk.GetImageFromArray(label_zhw.astype(np.int16))
    label.CopyInformation(image)
    sitk.WriteImage(label, str(out))


def write_hemseg_release(root: Union[str, Path], num_scans: int = 6, num_slices: int = 8, size: int = 64,
                         seed: int = 0, scan_list: str = '200', labels: str = 'zip', archives: str = '200') -> Path:
    """Write a synthetic HemSeg release under ``root`` (see the module docstring); returns ``root``.

    ``scan_list``: ``'200'`` (``annotion_file_info.jsonl``), ``'500'`` (``annotion_file_info_500.jsonl``) or
    ``'both'``; ``archives``: ``'200'`` (``IPH_IVH_label``), ``'500'`` (``HemSeg-500``) or ``'both'``; ``labels``:
    ``'zip'`` (``<archive>.zip``) or ``'folder'`` (extracted ``<archive>/``). Every scan of a release gets its
    own series in one shared folder, each series written to a scratch folder first so SimpleITK reads
    exactly its files.
    """
    import shutil
    import tempfile

    if scan_list not in ('200', '500', 'both') or archives not in ('200', '500', 'both') \
            or labels not in ('zip', 'folder'):
        raise ValueError("scan_list and archives must be '200', '500' or 'both' and labels 'zip' or 'folder', got "
                         f'{scan_list}, {archives}, {labels}')
    if num_scans < 1:
        raise ValueError(f'need num_scans >= 1, got {num_scans}')
    root = Path(root)
    dicom_dir = root / DICOM_DIR
    dicom_dir.mkdir(parents=True, exist_ok=True)
    spacing = phantom_spacing(size)
    with_500 = '500' in (scan_list, archives) or 'both' in (scan_list, archives)
    n200 = hemseg200_count(num_scans) if with_500 else num_scans
    lines: Dict[str, List[dict]] = {'200': [], '500': []}
    members: Dict[str, Dict[str, Path]] = {'200': {}, '500': {}}  # archive → member → scratch file
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        for i, info in enumerate(hemseg_scan_layout(num_scans, seed)):
            hu, mask = head_ct_phantom(num_slices, size, rng=np.random.default_rng([seed, i]),
                                       num_bleeds=0 if i == 2 else 1)
            t = math.radians(info['tilt'])
            folder = Path(scratch) / info['scan']
            # tilted as the real label 08154d6b7b: steps along the slice normal, 5.0 mm in z (5.39 mm apart)
            step = (spacing[0], spacing[1], spacing[2] / math.cos(t))
            paths = write_dicom_series(
                hu, folder, spacing=step, origin=(-115.0, -115.0 + 3.0 * i, 10.0 * i),
                orientation=(1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t)), signed=info['signed'],
                seed=seed * 1000 + i, patient_id=info['patient'])
            if info['signed']:
                _single_window(paths)
            label_file = Path(scratch) / f"{info['scan']}.nii.gz"
            _sitk_label(paths, mask, label_file)
            split_200 = MOVED_IN_200[1] if with_500 and i == MOVED_IN_200[0] else info['split']
            if i < n200:
                members['200'][f"{LABEL_DIR}/{split_200}/label/{info['scan']}.nii.gz"] = label_file
            members['500'][f"{LABEL_DIR_500}/{info['split']}/label/{info['scan']}.nii.gz"] = label_file
            for p in paths:
                shutil.move(str(p), dicom_dir / p.name)
            ids = [p.stem[3:] for p in paths]
            np.random.default_rng([seed, i, 1]).shuffle(ids)
            if i < n200:
                lines['200'].append({'patient': info['patient'], 'scan_': info['scan'], 'slice_list': ids})
            lines['500'].append({'patient_name': info['patient'], 'scan_name': info['scan'],
                                 'slice_list': {str(k): s for k, s in enumerate(ids)}})
        for version, (zip_name, _) in (('200', (LABEL_ZIP, LABEL_DIR)), ('500', (LABEL_ZIP_500, LABEL_DIR_500))):
            if archives not in (version, 'both'):
                continue
            if labels == 'zip':
                with zipfile.ZipFile(root / zip_name, 'w') as zf:
                    for member, path in sorted(members[version].items()):
                        zf.write(path, member)
            else:
                for member, path in members[version].items():
                    (root / member).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, root / member)
    for version, name in (('200', JSONL_200), ('500', JSONL_500)):
        if scan_list in (version, 'both'):
            (root / name).write_text(''.join(json.dumps(line) + '\n' for line in lines[version]))
    by_split: Dict[str, List[str]] = {}
    for info in hemseg_scan_layout(num_scans, seed):
        by_split.setdefault(info['split'], []).append(info['scan'])
    for split in ('train', 'val', 'test'):
        with open(root / f'{split}_set.csv', 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['filename', 'label'])
            writer.writerows([scan, 1] for scan in by_split.get(split, []))
    return root
