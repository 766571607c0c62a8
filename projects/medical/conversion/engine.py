"""The one conversion loop: cases → 8-bit PNG slices + masks + manifest + statistics.

``prepare(converter, src, out)`` finds the cases, converts them in parallel (one case per task, so peak
memory is a few volumes, not the dataset) into a temporary folder next to ``out``, assigns patient-level
splits, writes the manifest, per-case geometry, ``splits.json``, ``dataset.json`` and ``stats.json``, and
only then moves the folder into place. A failure or interruption leaves nothing behind; a re-run on an
up-to-date output returns at once.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import MedSegError
from ..labels import check_same_shape, slice_class_counts
from ..manifest import MANIFEST_NAME, SliceRecord, slice_stem, write_case_geometry, write_manifest
from ..version import __version__
from .base import CaseSource, DatasetConverter

#: PNG encoder settings used for every slice (zlib level 1: fast, ~lossless size within a few %).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
STAGING = '_staging'
STAMP = '.prepare.json'


@dataclass
class CaseResult:
    """What converting one case produced (small: sent back from the worker)."""

    case_id: str
    num_slices: int
    labelled: bool
    spacing: Optional[Tuple[float, float, float]]
    geometry: dict
    class_pixels: List[int] = field(default_factory=list)
    class_slices: List[int] = field(default_factory=list)
    slice_pixels: List[int] = field(default_factory=list)  # foreground pixels per slice (previews)

    @property
    def has_foreground(self) -> bool:
        return self.labelled and sum(self.class_pixels[1:]) > 0


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a 2D uint8 array as an 8-bit single-channel PNG (raises with the path on failure)."""
    ok, buf = cv2.imencode('.png', array, PNG_PARAMS)
    if not ok:
        raise MedSegError(path, 'PNG encoding failed')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def convert_case(converter: DatasetConverter, case: CaseSource, staging: Path) -> CaseResult:
    """Read, normalise, validate and write one case's slices into ``staging/{images,masks}``."""
    image = converter.read_image(case)
    pixels = converter.to_uint8(case, image)
    label = converter.read_label(case)
    num_classes = converter.label_map.num_classes
    classes = None
    if label is not None:
        check_same_shape(image.array.shape, label.array.shape, label.source, image.source)
        classes = converter.label_map.remap(label.array, label.source)
    for k in range(pixels.shape[0]):
        stem = slice_stem(case.case_id, k)
        write_png(staging / 'images' / f'{stem}.png', pixels[k])
        if classes is not None:
            write_png(staging / 'masks' / f'{stem}.png', classes[k])
    geometry = image.geometry()
    geometry.update(case_id=case.case_id, image_source=image.source,
                    label_source=None if label is None else label.source)
    result = CaseResult(case.case_id, int(pixels.shape[0]), classes is not None, image.spacing, geometry)
    if classes is not None:
        counts = slice_class_counts(classes, num_classes)
        result.class_pixels, result.class_slices = counts.sum(axis=0).tolist(), (counts > 0).sum(axis=0).tolist()
        result.slice_pixels = counts[:, 1:].sum(axis=1).tolist()
    return result


def _worker(args: Tuple[DatasetConverter, CaseSource, Path]) -> CaseResult:
    return convert_case(*args)


def _map_cases(converter: DatasetConverter, cases: Sequence[CaseSource], staging: Path,
               workers: int) -> List[CaseResult]:
    tasks = [(converter, case, staging) for case in cases]
    bar = dict(total=len(tasks), desc=f'{converter.name}: converting cases', unit='case',
               disable=None, file=sys.stderr)
    if workers <= 1 or len(tasks) == 1:
        return [convert_case(*t) for t in tqdm(tasks, **bar)]
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
    """Hash of the converter, its settings, this package's version and every input file's size/mtime."""
    h = hashlib.sha256()
    h.update(json.dumps([converter.name, __version__, converter.settings()], sort_keys=True, default=str).encode())
    for case in sorted(cases, key=lambda c: c.case_id):
        h.update(f'{case.case_id}|{case.split}'.encode())
        for path in case.files():
            st = path.stat()
            h.update(f'|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}'.encode())
    return h.hexdigest()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def prepare(converter: DatasetConverter, src: Path, out: Path, workers: Optional[int] = None,
            overwrite: bool = False, previews: int = 4) -> dict:
    """Convert the release under ``src`` into ``out``; returns the statistics (also ``out/stats.json``)."""
    src, out = Path(src), Path(out)
    cases = converter.find_cases(src)
    if not cases:
        raise MedSegError(src, f'no {converter.name} cases found: expected {converter.expected_layout}')
    seen: Dict[str, CaseSource] = {}
    for case in cases:
        if case.case_id in seen:
            raise MedSegError(next(case.files(), src), f'case id {case.case_id!r} occurs twice')
        seen[case.case_id] = case
    stamp = fingerprint(converter, cases)
    if out.exists():
        previous = _read_stamp(out)
        if previous is not None and previous.get('fingerprint') == stamp and not overwrite:
            stats = json.loads((out / 'stats.json').read_text())
            stats['up_to_date'] = True
            return stats
        if not overwrite:
            why = 'was prepared from other inputs or options' if previous else 'exists and is not a prepared dataset'
            raise MedSegError(out, f'output folder {why}; pass --overwrite to replace it')

    tmp = out.parent / f'.{out.name}.tmp-{uuid.uuid4().hex[:8]}'
    try:
        staging = tmp / STAGING
        (staging / 'images').mkdir(parents=True)
        (staging / 'masks').mkdir()
        results = _map_cases(converter, cases, staging, workers or default_workers())
        results.sort(key=lambda r: r.case_id)
        split_of = _splits(converter, cases, results)
        records = _place_files(tmp, staging, results, split_of)
        shutil.rmtree(staging)
        write_manifest(tmp / MANIFEST_NAME, records)
        for r in results:
            write_case_geometry(tmp, r.case_id, {**r.geometry, 'split': split_of[r.case_id]})
        stats = statistics(converter, results, split_of)
        _write_json(tmp / 'stats.json', stats)
        _write_json(tmp / 'splits.json', converter.split_file(
            {c: s for c, s in split_of.items() if not seen[c].split}))
        _write_json(tmp / 'dataset.json', {
            'name': converter.name, 'classes': list(converter.label_map.classes),
            'labels': {n: i for i, n in enumerate(converter.label_map.classes)},
            'raw_label_values': {str(k): v for k, v in converter.label_map.mapping.items()},
            'file_ending': '.png', 'settings': converter.settings(), 'source': str(src.resolve()),
            'numTraining': sum(1 for r in results if r.labelled), 'version': __version__})
        if previews:
            from ..visualization import write_previews
            write_previews(tmp, records, results, previews)
        _write_json(tmp / STAMP, {'fingerprint': stamp})
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _splits(converter: DatasetConverter, cases: Sequence[CaseSource], results: Sequence[CaseResult]) -> Dict[str, str]:
    pinned = {c.case_id: c.split for c in cases if c.split}
    free = {r.case_id: r.has_foreground for r in results if r.case_id not in pinned}
    split_of = dict(pinned)
    if free:
        split_of.update(converter.assign_splits(free))
    return split_of


def _place_files(root: Path, staging: Path, results: Sequence[CaseResult],
                 split_of: Dict[str, str]) -> List[SliceRecord]:
    """Move staged slices into ``images/<split>``/``masks/<split>`` and build the manifest rows."""
    records: List[SliceRecord] = []
    for r in results:
        split = split_of[r.case_id]
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        if r.labelled:
            (root / 'masks' / split).mkdir(parents=True, exist_ok=True)
        sx, sy, sz = r.spacing if r.spacing is not None else (None, None, None)
        for k in range(r.num_slices):
            name = f'{slice_stem(r.case_id, k)}.png'
            image = f'images/{split}/{name}'
            os.replace(staging / 'images' / name, root / image)
            mask = ''
            if r.labelled:
                mask = f'masks/{split}/{name}'
                os.replace(staging / 'masks' / name, root / mask)
            records.append(SliceRecord(split, r.case_id, k, image, mask, sx, sy, sz))
    return records


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


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str) + '\n')


def _read_stamp(out: Path) -> Optional[dict]:
    try:
        return json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Atomically replace ``out`` by ``tmp`` (old output removed only after the new one is in place)."""
    if out.exists():
        trash = out.parent / f'.{out.name}.old-{uuid.uuid4().hex[:8]}'
        os.replace(out, trash)
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)

