"""The one conversion loop: cases → 8-bit PNG slices + masks, split lists, manifest, statistics.

``prepare(converter, src, out)`` finds the cases, converts them in parallel (one case per task, so peak
memory is a few volumes, not the dataset) into a temporary folder next to ``out`` and only then moves the
folder into place. Every slice is written once, ``images/<case>_<slice:04d>.png`` (+ ``masks/...`` for
labelled cases), in the display slice convention (:mod:`mmseg_medical.orientation`); splits are lists
over that store (``splits/<name>.txt``, one slice stem per line: mmseg's ``ann_file``).

Each labelled case's label is also kept on the source scan's own voxel grid, in class indices:
``labels/<case>.nii.gz`` (uint8; source voxel order and affine, before the display reorientation and any
``--spacing`` / ``--crop``), the grid :func:`mmseg_medical.restacking.to_source_grid` puts predictions on,
so a prepared dataset can be scored there without the raw release (:func:`mmseg_medical.manifest.read_source_label`).

Nothing is lost silently: when the converter's spatial step (``--spacing``, ``--crop``) drops labelled
voxels, the loss is counted per case and class in source-grid voxels (voxels of class c whose round trip
through the step and :func:`mmseg_medical.spatial.invert_spatial` is no longer c), split into voxels
outside the crop window and voxels lost by nearest-neighbour resampling inside it. Every loss is recorded
in ``dataset.json`` (``removed_label_voxels``) and ``cases/<case>.json``; one ``warning:`` line per case and
class goes to stderr when voxels lie outside the crop window, when a class is left with no pixel on the
prepared slices, or when resampling removes more than :data:`RESAMPLING_WARN_FRACTION` of the class's
voxels in that case (a few boundary voxels are the expected partial-volume effect: recorded, not warned).

* Prepare never deletes what it did not write: ``out`` must be new, an empty folder or a dataset prepared
  by this project (``dataset.json`` with ``prepared_by``, :func:`~mmseg_medical.manifest.is_prepared_dataset`);
  only such a dataset is replaced (``--overwrite``). Any other folder with files in it is refused with or
  without ``--overwrite``, and so is an ``out`` equal to ``src``, containing it or inside it
  (:func:`~mmseg_medical.outputs.check_apart`): :class:`~mmseg_medical.errors.UsageError`, exit status 2.
* A failure or interruption leaves nothing behind; temporary folders of a killed run (SIGKILL) are
  removed by the next run; a failing ``--overwrite`` leaves the previous output as it was.
* A re-run on an up-to-date output returns at once; a re-run that changes only the split settings
  (``--seed``, ``--val-fraction``, ``--folds``) rewrites the lists, manifest and statistics, not the PNGs
  nor ``labels/``.
"""
from __future__ import annotations

import glob
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import MedSegError, UsageError
from ..labels import slice_class_counts
from ..manifest import (CASES_DIR, LABELS_DIR, MANIFEST_NAME, PREPARED_BY, SLICE_VALUES, SliceRecord,
                        channel_folder, is_prepared_dataset, read_case_geometry, slice_stem, source_label_path,
                        write_case_geometry, write_manifest, write_source_label)
from ..orientation import DISPLAY_CONVENTION, display_slice_sources, display_transform, to_display
from ..outputs import check_apart
from ..spatial import invert_spatial
from ..version import __version__
from ..volume import Volume, check_same_geometry, geometry_mismatch, save_nifti
from .base import CaseInfo, CaseSource, DatasetConverter

#: PNG encoder settings used for every slice (zlib level 1: fast, ~lossless size within a few %).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
STAMP = '.prepare.json'
SPLITS_DIR = 'splits'
SKIPPED = 'skipped.json'
NIFTI_STAGING = '_nifti'
#: Resampling losses (inside the crop window) warn above this share of a class's voxels in a case.
RESAMPLING_WARN_FRACTION = 0.1


@dataclass
class CaseResult:
    """What converting one case produced (small: sent back from the worker; kept in ``cases/<case>.json``)."""

    case_id: str
    num_slices: int
    labelled: bool
    spacing: Optional[Tuple[float, float, float]]
    geometry: dict
    group: str = ''
    pinned: Optional[str] = None
    class_pixels: List[int] = field(default_factory=list)
    class_slices: List[int] = field(default_factory=list)
    slice_pixels: List[int] = field(default_factory=list)  # foreground pixels per slice (previews, sampler)
    #: class name → {'source_voxels', 'outside_crop', 'resampling'} for classes the spatial step cut into
    removed_label_voxels: Dict[str, Dict[str, int]] = field(default_factory=dict)
    #: the spec's per-slice values (``CaseSource.extra[SLICE_VALUES]``) in display order: manifest columns
    slice_columns: Dict[str, list] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)  # printed by the parent process

    @property
    def has_foreground(self) -> bool:
        return self.labelled and sum(self.class_pixels[1:]) > 0

    def info(self) -> CaseInfo:
        return CaseInfo(self.case_id, self.labelled, self.has_foreground, self.group or self.case_id, self.pinned)

    def to_json(self) -> dict:
        """``cases/<case>.json``: the geometry (restacking) plus what the split rules and statistics need."""
        return {**self.geometry, 'case_id': self.case_id, 'group': self.group or self.case_id,
                'pinned_split': self.pinned, 'labelled': self.labelled,
                'removed_label_voxels': self.removed_label_voxels, 'slice_columns': self.slice_columns,
                'statistics': {'class_pixels': self.class_pixels, 'class_slices': self.class_slices,
                               'slice_pixels': self.slice_pixels}}

    @classmethod
    def from_json(cls, info: dict) -> 'CaseResult':
        stats = info.get('statistics') or {}
        spacing = info.get('spacing')
        return cls(info['case_id'], int(info['shape_zhw'][0]), bool(info['labelled']),
                   None if spacing is None else tuple(spacing), info, info.get('group') or info['case_id'],
                   info.get('pinned_split'), list(stats.get('class_pixels', [])),
                   list(stats.get('class_slices', [])), list(stats.get('slice_pixels', [])),
                   dict(info.get('removed_label_voxels') or {}), dict(info.get('slice_columns') or {}))


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a 2D uint8 array (or H x W x 3, BGR) as an 8-bit PNG (raises with the path on failure)."""
    ok, buf = cv2.imencode('.png', array, PNG_PARAMS)
    if not ok:
        raise MedSegError(path, 'PNG encoding failed')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def convert_case(converter: DatasetConverter, case: CaseSource, root: Path) -> CaseResult:
    """Read, check, reorient, normalise and write one case's slices into ``root/{images,masks}``.

    The label must lie on the image's voxel grid (shape and affine); it is mapped to class indices and
    written to ``root/labels/<case>.nii.gz`` on that source grid, then both are put in the display slice
    convention with the image's transform, which ``cases/<case>.json`` records.
    """
    channels = converter.read_channels(case)
    image = channels[0]
    for extra in channels[1:]:  # every channel on channel 0's voxel grid
        why = geometry_mismatch(image, extra)
        if why is not None:
            raise MedSegError(extra.source, f'channel does not match channel 0 {image.source}: {why}')
    label = converter.read_label(case)
    if label is not None:
        check_same_geometry(image, label)
    if converter.nifti_out is not None:  # the volume as read, moved to --nifti-out only if the run succeeds
        save_nifti(image, root / NIFTI_STAGING / f'{case.case_id}.nii.gz')
    if label is not None:  # validated and mapped to class indices on the source grid (elementwise), before any crop
        label = replace(label, array=converter.label_map.remap(label.array, label.source))
        write_source_label(root, case.case_id, _source_grid_label(label, image))
    # Sources already in display orientation (e.g. frames of a viewer's export) are kept as they are.
    record = None if image.meta.get('display_orientation') else display_transform(image)
    image = to_display(image, record)
    if label is not None:
        label = to_display(label, record)
    display_label = None if label is None else label.array
    image, label, spatial = converter.spatial_transform(image, label)
    others = [converter.spatial_transform(to_display(c, record))[0] for c in channels[1:]]
    planes = ([converter.channel_uint8(case, c, v) for c, v in enumerate([image, *others])] if others
              else [converter.to_uint8(case, image)])
    pixels = planes[0]
    for c in range(1, len(planes)):
        (root / channel_folder(c)).mkdir(exist_ok=True)
    num_classes = converter.label_map.num_classes
    classes = None if label is None else label.array
    for k in range(pixels.shape[0]):
        stem = slice_stem(case.case_id, k)
        for c, plane in enumerate(planes):
            write_png(root / channel_folder(c) / f'{stem}.png', plane[k])
        if classes is not None:
            write_png(root / 'masks' / f'{stem}.png', classes[k])
    geometry = image.geometry()
    geometry.update(image_source=image.source, label_source=None if label is None else label.source,
                    source_label=None if label is None else f'{LABELS_DIR}/{case.case_id}.nii.gz',
                    display_transform=record, spatial=spatial, meta=case.extra)
    result = CaseResult(case.case_id, int(pixels.shape[0]), classes is not None, image.spacing, geometry,
                        case.patient, case.split)
    values = case.extra.get(SLICE_VALUES) or {}  # the spatial step is in-plane: slices keep their order
    if values:
        try:
            order = display_slice_sources(record, int(pixels.shape[0]))
        except MedSegError as exc:
            raise MedSegError(image.source, exc.problem) from None
        for name, column in values.items():
            if len(column) != len(order):
                raise MedSegError(image.source, f'{len(column)} values of {name} for {len(order)} slices')
            result.slice_columns[name] = [column[k] for k in order]
    if classes is not None:
        counts = slice_class_counts(classes, num_classes)
        result.class_pixels, result.class_slices = counts.sum(axis=0).tolist(), (counts > 0).sum(axis=0).tolist()
        result.slice_pixels = counts[:, 1:].sum(axis=1).tolist()
        if spatial is not None:
            result.removed_label_voxels, result.warnings = spatial_label_losses(
                case.case_id, display_label, classes, spatial, converter.label_map.classes)
    return result


def _source_grid_label(label: Volume, image: Volume) -> Volume:
    """The label with the geometry of its own file, else the image's (same grid: checked)."""
    affine = label.affine if label.affine is not None else image.affine
    spacing = label.spacing if label.spacing is not None else image.spacing
    return Volume(array=label.array, spacing=spacing, affine=affine, source=label.source)


def spatial_label_losses(case_id: str, before: np.ndarray, after: np.ndarray, spatial: dict,
                         class_names: Sequence[str]) -> Tuple[Dict[str, Dict[str, int]], List[str]]:
    """What the spatial step ``spatial`` removed from the display-order class map ``before`` (``after``: on
    the prepared grid): per class, its voxel count and the voxels whose round trip (``invert_spatial``) is
    no longer that class, split into those outside the crop window and those lost by resampling; and the
    ``warning:`` lines of the module's rule. Counts are source-grid voxels (the reorientation only permutes).
    """
    back = invert_spatial(after, spatial)
    inside = invert_spatial(np.ones((1, *after.shape[1:]), np.uint8), spatial)[0].astype(bool)
    removed: Dict[str, Dict[str, int]] = {}
    warnings: List[str] = []
    for c in range(1, len(class_names)):
        source = before == c
        total = int(np.count_nonzero(source))
        lost = source & (back != c)
        n_lost = int(np.count_nonzero(lost))
        if not n_lost:
            continue
        outside = int(np.count_nonzero(lost & ~inside[None]))
        resampling = n_lost - outside
        removed[class_names[c]] = {'source_voxels': total, 'outside_crop': outside, 'resampling': resampling}
        vanished = not np.any(after == c)
        if outside or vanished or resampling > RESAMPLING_WARN_FRACTION * total:
            warnings.append(_removal_warning(case_id, class_names[c], total, outside, resampling, vanished, spatial))
    return removed, warnings


def _removal_warning(case_id: str, name: str, total: int, outside: int, resampling: int, vanished: bool,
                     spatial: dict) -> str:
    steps = []
    if resampling and spatial.get('spacing') is not None:
        steps.append(f'--spacing {spatial["spacing"]:g}')
    if outside and spatial.get('crop') is not None:
        steps.append(f'--crop {spatial["crop"]}')
    where = (f'{outside} outside the crop window, {resampling} by resampling' if outside and resampling
             else 'outside the crop window' if outside else 'by resampling')
    line = (f'warning: {case_id}: {" ".join(steps) or "the spatial step"} removes {outside + resampling} of '
            f'{total} labelled voxels of {name} ({where})')
    return line + ('; none left on the prepared slices' if vanished else '')


def _worker(args: Tuple[DatasetConverter, CaseSource, Path]) -> Union[CaseResult, Tuple[str, str]]:
    """One case; with ``--skip-bad`` a failing case gives ``(case_id, error line)`` and leaves no file."""
    converter, case, root = args
    try:
        return convert_case(converter, case, root)
    except MedSegError as exc:
        if not converter.skip_bad:
            raise
        for folder in ('images', 'masks', *(p.name for p in root.glob('images_[0-9][0-9][0-9][0-9]'))):
            for path in (root / folder).glob(f'{glob.escape(case.case_id)}_[0-9][0-9][0-9][0-9].png'):
                path.unlink()
        (root / NIFTI_STAGING / f'{case.case_id}.nii.gz').unlink(missing_ok=True)
        source_label_path(root, case.case_id).unlink(missing_ok=True)
        return case.case_id, str(exc)


def _map_cases(converter: DatasetConverter, cases: Sequence[CaseSource], staging: Path,
               workers: int) -> List[Union[CaseResult, Tuple[str, str]]]:
    tasks = [(converter, case, staging) for case in cases]
    bar = dict(total=len(tasks), desc=f'{converter.name}: converting cases', unit='case',
               disable=None, file=sys.stderr)
    if workers <= 1 or len(tasks) == 1:
        return [_worker(t) for t in tqdm(tasks, **bar)]
    # Workers are forked (no re-import of torch/mmseg). OpenCV's thread pool does not survive a fork: a
    # child that inherits its threads hangs in the next parallel cv2 call, so cv2 runs single-threaded
    # while the pool lives (one case per process is the parallelism anyway).
    method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with mp.get_context(method).Pool(min(workers, len(tasks))) as pool:
            return list(tqdm(pool.imap_unordered(_worker, tasks), **bar))
    finally:
        cv2.setNumThreads(threads)


def fingerprint(converter: DatasetConverter, cases: Sequence[CaseSource]) -> str:
    """Hash of the converter, its slice settings, this package's version and every byte source (file
    size/mtime; zip archive size/mtime + member name, size, CRC). Split settings are not part of it."""
    h = hashlib.sha256()
    h.update(json.dumps([converter.name, __version__, converter.settings(), converter.skip_bad,
                         None if converter.nifti_out is None else str(converter.nifti_out.resolve())],
                        sort_keys=True, default=str).encode())
    for case in sorted(cases, key=lambda c: c.case_id):
        h.update(f'{case.case_id}|{case.split}|{case.patient}'.encode())
        for line in case.fingerprint_lines():
            h.update(f'|{line}'.encode())
    return h.hexdigest()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def prepare(converter: DatasetConverter, src: Path, out: Path, workers: Optional[int] = None,
            overwrite: bool = False, previews: int = 4) -> dict:
    """Convert the release under ``src`` into ``out``; returns the statistics (also ``out/stats.json``)."""
    src, out = (None if src is None else Path(src)), Path(out)
    if src is None and not converter.src_optional:
        raise MedSegError(None, f'{converter.name}: --src is required (the folder holding the raw release)')
    check_apart(out, '--out', {'--src': src})
    if converter.nifti_out is not None:
        check_apart(converter.nifti_out, '--nifti-out', {'--src': src, '--out': out})
    clean_stale(out)
    check_replaceable(out)
    cases = converter.find_cases(src)
    if not cases:
        raise MedSegError(src, f'no {converter.name} cases found: expected {converter.expected_layout}')
    seen: Dict[str, CaseSource] = {}
    for case in cases:
        if case.case_id in seen:
            raise MedSegError(next(case.files(), src), f'case id {case.case_id!r} occurs twice')
        seen[case.case_id] = case
    try:
        converter.check_split_options(cases)
    except ValueError as exc:
        raise MedSegError(src, f'split options: {exc}') from None
    stamp = fingerprint(converter, cases)
    if out.exists():
        previous = _read_stamp(out)
        if previous is not None and previous.get('fingerprint') == stamp and not overwrite:
            if previous.get('split_settings') == converter.split_settings() and (out / SPLITS_DIR).is_dir():
                stats = json.loads((out / 'stats.json').read_text())
                stats['up_to_date'] = True
                return stats
            return resplit(converter, out)
        if not overwrite and any(out.iterdir()):  # a prepared dataset (check_replaceable); an empty folder is used
            raise MedSegError(out, 'output folder was prepared from other inputs or options; pass --overwrite to '
                                   'replace it')

    tmp = out.parent / f'.{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        (tmp / 'images').mkdir(parents=True)
        (tmp / 'masks').mkdir()
        if converter.nifti_out is not None:
            (tmp / NIFTI_STAGING).mkdir()
        outcomes = _map_cases(converter, cases, tmp, workers or default_workers())
        results = sorted((r for r in outcomes if isinstance(r, CaseResult)), key=lambda r: r.case_id)
        skipped = {**converter.skipped, **{r[0]: r[1] for r in outcomes if not isinstance(r, CaseResult)}}
        if not results:
            raise MedSegError(src, f'no case could be converted ({len(skipped)} skipped; first: '
                                   f'{next(iter(sorted(skipped.items())), ("", ""))[1]})')
        for r in results:  # after the progress bar: one line per case and class
            for line in r.warnings:
                print(line, file=sys.stderr)
        removed = {r.case_id: r.removed_label_voxels for r in results if r.removed_label_voxels}
        if skipped:
            _write_json(tmp / SKIPPED, dict(sorted(skipped.items())))
        for r in results:
            write_case_geometry(tmp, r.case_id, r.to_json())
        records, stats = write_splits(converter, tmp, results)
        _write_json(tmp / 'dataset.json', {
            'name': converter.name, 'classes': list(converter.label_map.classes),
            'labels': {n: i for i, n in enumerate(converter.label_map.classes)},
            'raw_label_values': {str(k): v for k, v in converter.label_map.mapping.items()},
            'file_ending': '.png', 'slice_convention': DISPLAY_CONVENTION,
            'settings': converter.settings(), 'split_settings': converter.split_settings(),
            'source': None if src is None else str(src.resolve()),
            'numTraining': sum(1 for r in results if r.labelled), 'skipped': dict(sorted(skipped.items())),
            'source_labels': f'{LABELS_DIR}/<case>.nii.gz', 'removed_label_voxels': removed,
            **_mirror_card(converter), **converter.card(), 'version': __version__, 'prepared_by': PREPARED_BY})
        if previews:
            from ..visualization import write_previews
            write_previews(tmp, records, results, previews)
        _write_json(tmp / STAMP, {'fingerprint': stamp, 'split_settings': converter.split_settings()})
        if converter.nifti_out is not None:
            _export(tmp / NIFTI_STAGING, converter.nifti_out)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stats['skipped'] = dict(sorted(skipped.items()))
    stats['removed_label_voxels'] = removed
    return stats


def _export(staged: Path, target: Path) -> None:
    """Move the staged ``--nifti-out`` volumes into ``target`` (each file replaced atomically)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(staged.iterdir()):
        shutil.move(str(path), str(target / f'.{path.name}.part'))
        os.replace(target / f'.{path.name}.part', target / path.name)
    staged.rmdir()


def write_splits(converter: DatasetConverter, target: Path, results: Sequence[CaseResult]
                 ) -> Tuple[List[SliceRecord], dict]:
    """Split lists, ``splits.json``, ``manifest.csv`` and ``stats.json`` of ``results``, written into
    ``target`` (only the results are read); returns the manifest rows and the statistics.
    """
    split_of, lists = converter.split_lists({r.case_id: r.info() for r in results})
    by_case = {r.case_id: r for r in results}
    records: List[SliceRecord] = []
    for r in results:
        sx, sy, sz = r.spacing if r.spacing is not None else (None, None, None)
        for k in range(r.num_slices):
            name = f'{slice_stem(r.case_id, k)}.png'
            records.append(SliceRecord(split_of[r.case_id], r.case_id, k, f'images/{name}',
                                       f'masks/{name}' if r.labelled else '', sx, sy, sz,
                                       tuple((c, str(v[k])) for c, v in r.slice_columns.items())))
    (target / SPLITS_DIR).mkdir(parents=True, exist_ok=True)
    for name, members in lists.items():
        stems = [slice_stem(c, k) for c in members for k in range(by_case[c].num_slices)]
        (target / SPLITS_DIR / f'{name}.txt').write_text(''.join(f'{s}\n' for s in stems))
    for name, obj in converter.split_files(lists).items():
        _write_json(target / SPLITS_DIR / name, obj)
    _write_json(target / 'splits.json', lists)
    write_manifest(target / MANIFEST_NAME, records)
    stats = statistics(converter, results, split_of)
    stats['split_lists'] = {name: len(members) for name, members in lists.items()}
    _write_json(target / 'stats.json', stats)
    return records, stats


def resplit(converter: DatasetConverter, out: Path) -> dict:
    """Rewrite only the split lists, ``splits.json``, manifest and statistics of a prepared ``out``.

    The new files are written into a staging folder inside ``out`` and moved into place one by one;
    the stamp is updated last, so an interrupted re-split is redone by the next run.
    """
    results = [CaseResult.from_json(read_case_geometry(out, p.stem)) for p in sorted((out / CASES_DIR).glob('*.json'))]
    if not results:
        raise MedSegError(out / CASES_DIR, 'no case records: prepare again with --overwrite')
    staging = out / f'.resplit-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        _records, stats = write_splits(converter, staging, results)
        old = out / f'.splits-old-{os.getpid()}-{uuid.uuid4().hex[:8]}'
        ours = set(json.loads((out / 'splits.json').read_text())) if (out / 'splits.json').is_file() else set()
        ours |= {p.stem for p in (staging / SPLITS_DIR).glob('*.txt')}
        ours_files = {p.name for p in (staging / SPLITS_DIR).iterdir()}
        for path in sorted((out / SPLITS_DIR).glob('*')) if (out / SPLITS_DIR).is_dir() else []:
            # lists written by other tools (e.g. pseudo_label.py's target_pseudo.txt) are kept
            if path.is_file() and path.name not in ours_files and not (path.suffix == '.txt' and path.stem in ours):
                shutil.copy2(path, staging / SPLITS_DIR / path.name)
        if (out / SPLITS_DIR).exists():
            os.replace(out / SPLITS_DIR, old)
        os.replace(staging / SPLITS_DIR, out / SPLITS_DIR)
        for name in ('splits.json', MANIFEST_NAME, 'stats.json'):
            os.replace(staging / name, out / name)
        card = json.loads((out / 'dataset.json').read_text())
        card.update(converter.card())   # facts of the new split (e.g. strata, fold exclusions)
        card['split_settings'] = converter.split_settings()
        _write_json(staging / 'dataset.json', card)
        os.replace(staging / 'dataset.json', out / 'dataset.json')
        previous = _read_stamp(out) or {}
        _write_json(staging / STAMP, {**previous, 'split_settings': converter.split_settings()})
        os.replace(staging / STAMP, out / STAMP)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stats['resplit'] = True
    return stats


def statistics(converter: DatasetConverter, results: Sequence[CaseResult], split_of: Dict[str, str]) -> dict:
    """Cases/slices per split and, per class and split, pixel share and slices containing the class."""
    classes = list(converter.label_map.classes)
    splits: Dict[str, dict] = {}
    for r in results:
        s = splits.setdefault(split_of[r.case_id], {
            'cases': 0, 'slices': 0, 'labelled_slices': 0, 'foreground_cases': 0,
            'class_pixels': [0] * len(classes), 'class_slices': [0] * len(classes)})
        s['cases'] += 1
        s['slices'] += r.num_slices
        s['labelled_slices'] += r.num_slices if r.labelled else 0
        s['foreground_cases'] += int(r.has_foreground)
        for c in range(len(classes)) if r.labelled else ():
            s['class_pixels'][c] += r.class_pixels[c]
            s['class_slices'][c] += r.class_slices[c]
    return {'dataset': converter.name, 'classes': classes, 'splits': dict(sorted(splits.items()))}


def format_statistics(stats: dict) -> str:
    """Markdown tables in the style of the mmseg medical dataset cards."""
    splits = stats['splits']
    lines = [f"### {stats['dataset']}", '', '| split | cases | cases with foreground | slices | labelled slices |',
             '|---|---:|---:|---:|---:|']
    for name, s in splits.items():
        lines.append(f"| {name} | {s['cases']} | {s['foreground_cases']} | {s['slices']} | {s['labelled_slices']} |")
    header = '| class | ' + ' | '.join(f'slices ({n}) | pixel share ({n})' for n in splits) + ' |'
    lines += ['', header, '|---|' + '---:|---:|' * len(splits)]
    for c, cls in enumerate(stats['classes']):
        cells = []
        for s in splits.values():
            total = sum(s['class_pixels'])
            share = f"{100.0 * s['class_pixels'][c] / total:.3f}%" if total else '–'
            cells.append(f"{s['class_slices'][c] if total else '–'} | {share}")
        lines.append(f'| {cls} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _mirror_card(converter: DatasetConverter) -> dict:
    """``{'mirror_pairs': [[left, right], ...]}``: the converter's declared pairs among its classes (none: {})."""
    from ..laterality import pairs_within

    pairs = pairs_within(converter.mirror_pairs, converter.label_map.classes)
    return {'mirror_pairs': [list(p) for p in pairs]} if pairs else {}


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str) + '\n')


def _read_stamp(out: Path) -> Optional[dict]:
    try:
        return json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _stale(path: Path) -> bool:
    """A staging folder ``...-<pid>-<hex>`` whose process is gone (or of unknown owner)."""
    parts = path.name.rsplit('-', 2)
    return not (len(parts) == 3 and parts[1].isdigit() and _pid_alive(int(parts[1])))


def remove_stale(folder: Path, pattern: str) -> List[Path]:
    """Remove the staging folders ``folder/<pattern>`` (named ``...-<pid>-<hex>``) whose process is gone: what a
    killed writer (``infer_volume``, ``pseudo_label``) left behind. Returns the removed paths."""
    folder = Path(folder)
    removed = [p for p in (folder.glob(pattern) if folder.is_dir() else ()) if _stale(p)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def clean_stale(out: Path) -> None:
    """Remove what a killed run left beside / inside ``out``; restore ``out`` if a swap was cut short."""
    out = Path(out)
    if not out.parent.is_dir():
        return
    olds = [p for p in out.parent.glob(f'.{out.name}.old-*') if _stale(p)]
    if not out.exists() and olds:  # killed between the two renames of _swap_into_place
        os.replace(olds.pop(), out)
    for path in olds + [p for p in out.parent.glob(f'.{out.name}.tmp-*') if _stale(p)]:
        shutil.rmtree(path, ignore_errors=True)
    if out.is_dir() and is_prepared_dataset(out):  # nothing is removed from a folder prepare did not write
        for path in [*out.glob('.resplit-*'), *out.glob('.splits-old-*')]:
            if _stale(path):
                shutil.rmtree(path, ignore_errors=True)


def check_replaceable(out: Path) -> None:
    """Raise :class:`UsageError` unless ``out`` is absent, an empty folder or a prepared dataset
    (:func:`mmseg_medical.manifest.is_prepared_dataset`): prepare replaces nothing else, ``--overwrite`` or not."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise UsageError(out, '--out exists and is not a folder; prepare writes a folder: choose another --out')
    if any(out.iterdir()) and not is_prepared_dataset(out):
        raise UsageError(out, '--out is a folder with files in it that is not a dataset prepared by '
                              'tools/prepare_dataset.py (no dataset.json of its own): prepare never replaces it, '
                              'with or without --overwrite; choose a new or empty folder')


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Atomically replace ``out`` by ``tmp`` (old output removed only after the new one is in place); ``out``
    is checked again first (a folder filled with other files while the conversion ran is not replaced)."""
    check_replaceable(out)
    if out.exists():
        trash = out.parent / f'.{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}'
        os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)

