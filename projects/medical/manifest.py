"""The per-slice manifest (``OUT/manifest.csv``), per-case geometry (``OUT/cases/<case>.json``) and the
source-grid labels (``OUT/labels/<case>.nii.gz``).

Together they let slice predictions be restacked into volumes with the source geometry and scored there
without the raw release.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import MedSegError
from .volume import Volume

MANIFEST_NAME = 'manifest.csv'
CASES_DIR = 'cases'
LABELS_DIR = 'labels'
MANIFEST_COLUMNS = ('split', 'case_id', 'slice_index', 'image', 'mask', 'spacing_x', 'spacing_y',
                    'spacing_z')
#: ``CaseSource.extra`` key of per-slice values a spec reads from its release (``{column: [value per source
#: slice]}``, e.g. Cranium's hemorrhage subtype flags): the manifest gets one column each, in display order.
SLICE_VALUES = 'slice_values'


@dataclass(frozen=True)
class SliceRecord:
    """One row of the manifest. ``image``/``mask`` are relative to the dataset root; ``mask`` is ''
    for unlabelled slices; spacings are mm or ``None`` when unknown; ``extra``: the spec's per-slice
    columns (:data:`SLICE_VALUES`) as ``(column, text)`` pairs."""

    split: str
    case_id: str
    slice_index: int
    image: str
    mask: str = ''
    spacing_x: Optional[float] = None
    spacing_y: Optional[float] = None
    spacing_z: Optional[float] = None
    extra: Tuple[Tuple[str, str], ...] = ()

    @property
    def stem(self) -> str:
        return Path(self.image).stem


def channel_folder(channel: int) -> str:
    """Folder of image channel ``channel`` of a multi-channel dataset: ``images`` (0), ``images_0001`` (1), ..."""
    return 'images' if channel == 0 else f'images_{channel:04d}'


def slice_stem(case_id: str, slice_index: int) -> str:
    """File stem of one slice: ``<case_id>_<slice_index:04d>``."""
    return f'{case_id}_{slice_index:04d}'


def _fmt(value: Optional[float]) -> str:
    return '' if value is None else f'{value:.6g}'


def write_manifest(path: Union[str, Path], records: Iterable[SliceRecord]) -> None:
    """Write the manifest: :data:`MANIFEST_COLUMNS`, then every ``extra`` column in first-seen order
    (empty where a slice has none)."""
    records = list(records)
    extra: Dict[str, None] = {}
    for r in records:
        extra.update(dict.fromkeys(k for k, _ in r.extra))
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS + tuple(extra))
        for r in records:
            values = dict(r.extra)
            writer.writerow([r.split, r.case_id, r.slice_index, r.image, r.mask, _fmt(r.spacing_x),
                             _fmt(r.spacing_y), _fmt(r.spacing_z)] + [values.get(k, '') for k in extra])


def read_manifest(path: Union[str, Path]) -> List[SliceRecord]:
    """Read ``manifest.csv`` (or the dataset root containing it); columns beyond :data:`MANIFEST_COLUMNS`
    come back as each record's ``extra``."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise MedSegError(path, 'manifest not found (run tools/prepare_dataset.py first)')
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise MedSegError(path, f'manifest lacks columns {sorted(missing)}')
        extra = [k for k in reader.fieldnames or () if k not in MANIFEST_COLUMNS]

        def opt(v: str) -> Optional[float]:
            return float(v) if v else None

        return [SliceRecord(row['split'], row['case_id'], int(row['slice_index']), row['image'], row['mask'],
                            opt(row['spacing_x']), opt(row['spacing_y']), opt(row['spacing_z']),
                            tuple((k, row[k]) for k in extra if row[k] != ''))
                for row in reader]


DATASET_CARD = 'dataset.json'


def read_dataset_card(root: Union[str, Path]) -> dict:
    """``<root>/dataset.json`` of a prepared dataset (name, classes, settings, source, ...); one clear error when
    the folder is not a prepared dataset or the card cannot be read."""
    card = Path(root) / DATASET_CARD
    if not card.is_file():
        raise MedSegError(root, f'not a prepared dataset (no {DATASET_CARD}; run tools/prepare_dataset.py first)')
    try:
        info = json.loads(card.read_text())
    except (OSError, ValueError) as exc:
        raise MedSegError(card, f'cannot read dataset card ({type(exc).__name__}: {exc})') from None
    if not isinstance(info, dict):
        raise MedSegError(card, f'must hold a JSON object, got {type(info).__name__}')
    return info


#: ``dataset.json``'s mark of a folder written by ``tools/prepare_dataset.py`` (the one kind of folder it replaces).
PREPARED_BY = 'mmseg_medical tools/prepare_dataset.py'
#: Keys every card written by prepare has carried (cards of versions before ``prepared_by`` was written).
_PREPARED_KEYS = frozenset({'slice_convention', 'settings', 'split_settings', 'version'})


def is_prepared_dataset(root: Union[str, Path]) -> bool:
    """Whether ``root`` is a dataset prepared by this project: its ``dataset.json`` says ``prepared_by``
    :data:`PREPARED_BY` (or, written before that mark, carries all of prepare's own keys: the slice convention,
    the converter and split settings, the package version). A raw release's ``dataset.json`` (nnU-Net, the
    Medical Segmentation Decathlon) has none of these."""
    try:
        card = read_dataset_card(root)
    except MedSegError:
        return False
    return card.get('prepared_by') == PREPARED_BY or _PREPARED_KEYS <= card.keys()


def find_dataset_root(img_path: Union[str, Path]) -> Path:
    """The nearest ancestor of a slice that holds ``manifest.csv`` (the prepared dataset's root)."""
    for parent in Path(img_path).resolve().parents:
        if (parent / MANIFEST_NAME).is_file():
            return parent
    raise MedSegError(img_path, f'no {MANIFEST_NAME} above this slice: was it written by tools/prepare_dataset.py?')


def group_by_case(records: Iterable[SliceRecord]) -> Dict[str, List[SliceRecord]]:
    """Records per case, each list sorted by slice index."""
    cases: Dict[str, List[SliceRecord]] = {}
    for r in records:
        cases.setdefault(r.case_id, []).append(r)
    return {k: sorted(v, key=lambda r: r.slice_index) for k, v in cases.items()}


def write_case_geometry(root: Path, case_id: str, info: Mapping) -> None:
    (root / CASES_DIR).mkdir(exist_ok=True)
    with open(root / CASES_DIR / f'{case_id}.json', 'w') as f:
        json.dump(dict(info), f, indent=1, default=str)


def read_case_geometry(root: Union[str, Path], case_id: str) -> dict:
    path = Path(root) / CASES_DIR / f'{case_id}.json'
    if not path.is_file():
        raise MedSegError(path, f'no geometry recorded for case {case_id!r}')
    with open(path) as f:
        return json.load(f)


def restack(slices: Mapping[int, np.ndarray], geometry: Mapping, fill: int = 0) -> Volume:
    """Rebuild a (Z, H, W) volume from per-slice 2D arrays and a case's geometry JSON.

    Slices missing from ``slices`` are filled with ``fill``; 2D arrays must have the case's slice shape.
    """
    z, h, w = geometry['shape_zhw']
    first = next(iter(slices.values()), None)
    dtype = first.dtype if first is not None else np.uint8
    array = np.full((z, h, w), fill, dtype=dtype)
    for index, plane in slices.items():
        if not 0 <= index < z:
            raise MedSegError(None, f'slice index {index} outside the case ({z} slices)')
        if plane.shape != (h, w):
            raise MedSegError(None, f'slice {index} has shape {plane.shape}, expected {(h, w)}')
        array[index] = plane
    spacing = geometry.get('spacing')
    affine = geometry.get('affine')
    return Volume(array=array, spacing=None if spacing is None else tuple(spacing),
                  affine=None if affine is None else np.asarray(affine))


def records_as_dicts(records: Sequence[SliceRecord]) -> List[dict]:
    return [asdict(r) for r in records]


def source_label_path(root: Union[str, Path], case_id: str) -> Path:
    """``root/labels/<case>.nii.gz``: a labelled case's label in class indices on the source scan's grid."""
    return Path(root) / LABELS_DIR / f'{case_id}.nii.gz'


def write_source_label(root: Union[str, Path], case_id: str, label: Volume) -> Path:
    """Write ``label`` (class indices, source voxel order) as uint8 NIfTI at :func:`source_label_path`.

    With an affine it is stored as the sform and qform (code 1, mm); without one (a source that records no
    geometry) both codes are 0, so :func:`read_source_label` gives no affine back rather than a made-up one.
    """
    import nibabel as nib

    from .volume import save_nifti

    path = source_label_path(root, case_id)
    if label.affine is not None:
        return save_nifti(label, path, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(label.nifti_array(), dtype=np.uint8), None), str(path))
    return path


def read_source_label(root: Union[str, Path], case_id: str) -> Optional[Volume]:
    """The case's label on the source scan's voxel grid (class indices, uint8), as ``labels/<case>.nii.gz``
    holds it: ``to_source_grid`` of a restacked prediction has its shape and affine. ``None`` when the
    file is absent (unlabelled cases, datasets prepared before it was written); affine and spacing are
    ``None`` when the source recorded no geometry.
    """
    from .io.nifti import read_nifti

    path = source_label_path(root, case_id)
    if not path.is_file():
        return None
    volume = read_nifti(path)
    header = volume.meta.get('header')
    if header is not None and int(header['sform_code']) == 0 and int(header['qform_code']) == 0:
        volume = Volume(array=volume.array, source=volume.source, meta=volume.meta)
    return volume
