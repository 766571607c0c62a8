"""``tools/evaluate_volumes.py``: per-case, per-class metrics of predicted NIfTI label maps.

Pairs ``PRED_DIR/<case>.nii[.gz]`` with ``GT_DIR/<case>.nii[.gz]`` by case name (in a folder ``infer_volume``
wrote, only the files its last run listed in ``infer_volume.json``; others are named in a warning), computes Dice, IoU,
NSD, HD95 and ASSD per case and class (:func:`.metrics.case_metrics`), writes the per-case CSV and a
markdown summary (mean ± std [bootstrap CI], empty-mask counts) next to it, and prints the summary.
With ``--data`` the ground truth is a prepared dataset's ``labels/<case>.nii.gz``; where those hold a label
store's codes (``dataset.json`` ``label_store``: COVID-19-CT-Seg's ``--subtask all``) they are read as the
classes of the predictions' subtask (``--subtask``, else the smallest subtask holding every predicted label).
With ``--data`` of a dataset whose card names per-slice flags (Cranium's hemorrhage subtypes), the summary
adds the Dice over the slices carrying each flag (:mod:`.slice_flags`).
Any bad input prints ``error: <path>: <problem>`` on one line and exits 1 without writing any output.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import MedSegError
from .metrics import METRIC_NAMES, case_metrics
from .protocols import get_protocol, protocol_names
from .slice_flags import case_flag_rows, format_flags_markdown, summarize_flags
from .summary import format_site_markdown, format_summary_markdown, summarize, summarize_by_site

#: Columns of the per-case CSV of the ``default`` protocol, in order (other protocols: ``csv_columns``).
CSV_COLUMNS = ('case', 'class') + METRIC_NAMES + ('empty',)


def csv_columns(metrics: Sequence[str] = METRIC_NAMES) -> Tuple[str, ...]:
    """Columns of the per-case CSV for a protocol's metrics: ``case, class, <metrics>, empty``."""
    return ('case', 'class') + tuple(metrics) + ('empty',)
#: Largest distance from a whole number that a stored label value may have (float storage noise).
LABEL_ATOL = 1e-3
#: Tolerance when comparing the affines of a prediction and its ground truth.
AFFINE_ATOL = 1e-3

_NIFTI_SUFFIXES = ('.nii.gz', '.nii')


def case_name(path: Path) -> Optional[str]:
    """The case name of a NIfTI file (its name without ``.nii``/``.nii.gz``), ``None`` for other files."""
    for suffix in _NIFTI_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[:-len(suffix)]
    return None


def nifti_cases(folder: Path) -> Dict[str, Path]:
    """Case name -> file for the NIfTI files directly inside ``folder``."""
    if not folder.is_dir():
        raise MedSegError(folder, 'not a directory')
    cases: Dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = case_name(path)
        if name is None or not path.is_file():
            continue
        if name in cases:
            raise MedSegError(path, f'case {name!r} is also given by {cases[name].name}')
        cases[name] = path
    return cases


def prediction_cases(pred_dir: Path) -> Dict[str, Path]:
    """:func:`nifti_cases` of a predictions folder; where ``infer_volume`` wrote it (``infer_volume.json``), only
    the files its last run listed: the others (stale predictions of an earlier run, files put there by hand)
    are named in one ``warning:`` line and not scored."""
    from ..outputs import PREDICTION_LISTING, listed_files

    cases = nifti_cases(pred_dir)
    listed = listed_files(pred_dir)
    if listed is None:
        return cases
    left_out = sorted(p.name for p in cases.values() if p.name not in listed)
    if left_out:
        print(f'warning: {pred_dir}: {len(left_out)} prediction file(s) not written by the last infer_volume run '
              f'into this folder (not in its {PREDICTION_LISTING}) are not scored: {", ".join(left_out[:10])}'
              f'{" ..." if len(left_out) > 10 else ""}', file=sys.stderr)
    return {name: path for name, path in cases.items() if path.name in listed}


def pair_cases(gt_dir: Path, pred_dir: Path) -> List[Tuple[str, Path, Path]]:
    """``(case, gt_path, pred_path)`` for every case; every GT needs a prediction and vice versa."""
    gt_cases, pred_cases = nifti_cases(gt_dir), prediction_cases(pred_dir)
    if not gt_cases:
        raise MedSegError(gt_dir, 'no NIfTI files (.nii or .nii.gz) found')
    for name, path in gt_cases.items():
        if name not in pred_cases:
            raise MedSegError(path, f'no prediction for case {name!r} in {pred_dir}')
    for name, path in pred_cases.items():
        if name not in gt_cases:
            raise MedSegError(path, f'no ground truth for case {name!r} in {gt_dir}')
    return [(name, gt_cases[name], pred_cases[name]) for name in gt_cases]


def prepared_cases(data: Path, split: Optional[str], pred_dir: Path, strays: Optional[List[str]] = None
                   ) -> Tuple[List[Tuple[str, Path, Path]], List[str]]:
    """``(case, source label, prediction)`` for the predicted cases of ``split`` of a prepared dataset, and the
    cases of the split left without a prediction. The ground truth is the dataset's ``labels/<case>.nii.gz``
    (class indices on the source scan's grid, as prepare read the release: labels inside a zip included).
    A prediction may be named ``<case>`` or, as the crossMoDA challenge names labels, ``<case>_Label``.
    Prediction files that are no case of the split are appended to ``strays`` (file names). A split none
    of whose cases has a label (an image-only split) is an error saying so."""
    from ..manifest import LABELS_DIR, source_label_path
    from ..restacking import split_cases

    if not (data / LABELS_DIR).is_dir():
        raise MedSegError(data, f'has no {LABELS_DIR}/ folder (prepared by a version before 0.1.1): prepare it '
                                'again with --overwrite to keep the labels on the source grid')
    members = split_cases(data, split) if split else sorted(p.name[:-len('.nii.gz')]
                                                             for p in (data / LABELS_DIR).glob('*.nii.gz'))
    predictions = prediction_cases(pred_dir)
    for name in list(predictions):
        if name.endswith('_Label') and name[:-len('_Label')] not in predictions:
            predictions[name[:-len('_Label')]] = predictions.pop(name)
    if strays is not None:
        wanted = set(members)
        strays.extend(path.name for name, path in sorted(predictions.items()) if name not in wanted)
    pairs, missing, labelled = [], [], 0
    for case in members:
        label = source_label_path(data, case)
        if not label.is_file():
            continue                      # image-only cases of the split (no label to score)
        labelled += 1
        if case in predictions:
            pairs.append((case, label, predictions[case]))
        else:
            missing.append(case)
    if members and not labelled:
        raise MedSegError(data, f'split {split or "(all)"} has no labelled case ({len(members)} image-only '
                                'case(s), e.g. a target-domain split): there is no ground truth to score against')
    if not pairs:
        raise MedSegError(pred_dir, f'no prediction for any labelled case of split {split or "(all)"} of {data} '
                                    f'(expected e.g. {members[0] if members else "<case>"}.nii.gz)')
    return pairs, missing


def label_store_subtasks(data: Path, card: dict) -> Dict[str, Tuple[Dict[int, int], Tuple[str, ...]]]:
    """``subtask → (store code → class index, class names)`` of a prepared dataset whose labels hold a label
    store's codes (``dataset.json`` ``label_store``, e.g. COVID-19-CT-Seg's ``--subtask all``); ``{}`` when the
    labels hold the dataset's classes. A card prepared before it named the subtasks' classes takes them from
    its converter."""
    store = card.get('label_store')
    if not store:
        return {}
    where = data / 'dataset.json'
    try:
        classes = store.get('subtask_classes')
        if classes is None:
            from ..conversion import CONVERTERS
            classes = CONVERTERS[card['name']](**(card.get('settings') or {})).card()['label_store']['subtask_classes']
        return {str(s): ({int(k): int(v) for k, v in codes.items()}, tuple(str(c) for c in classes[s]))
                for s, codes in store['subtasks'].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MedSegError(where, f'label_store is not readable as subtasks with their classes ({type(exc).__name__}: '
                                 f'{exc}); prepare the dataset again') from None


def choose_subtask(subtasks: Dict[str, Tuple[Dict[int, int], Tuple[str, ...]]], top: Dict[Path, int],
                   requested: Optional[str], data: Path) -> str:
    """The subtask the predictions are scored as: ``requested`` (``--subtask``), else the one with the fewest
    classes that holds every predicted label (``top``: each prediction file's largest label). A prediction
    label the subtask has no class for is an error naming the file."""
    largest = max(top.items(), key=lambda item: item[1]) if top else (None, 0)
    if requested is not None:
        if requested not in subtasks:
            raise MedSegError('--subtask', f'{data} stores the subtasks {", ".join(subtasks)}, not {requested!r}')
        chosen = requested
    else:
        fits = sorted((len(classes), name) for name, (_, classes) in subtasks.items() if len(classes) > largest[1])
        if not fits:
            ranges = ', '.join(f'{s}: 0..{len(c) - 1}' for s, (_, c) in subtasks.items())
            raise MedSegError(largest[0], f'holds label {largest[1]}, more than any subtask of the label store of '
                                          f'{data} has ({ranges})')
        chosen = fits[0][1]
    classes = subtasks[chosen][1]
    if largest[1] >= len(classes):
        raise MedSegError(largest[0], f'holds label {largest[1]}, but subtask {chosen!r} has classes '
                                      f'0..{len(classes) - 1} ({", ".join(classes)})')
    return chosen


def load_labels(path: Path) -> Tuple[np.ndarray, Tuple[float, ...], np.ndarray]:
    """A NIfTI label map as ``(labels, spacing, affine)``, labels a non-negative integer array.

    The array keeps NIfTI ``(i, j, k)`` order and ``spacing`` is the header zooms of those axes. Float
    data is rounded to whole numbers; values further than ``LABEL_ATOL`` from one are rejected.
    """
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise MedSegError(path, f'cannot read NIfTI file ({type(exc).__name__}: {exc})') from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise MedSegError(path, f'expected a 2D or 3D label map, got shape {data.shape}')
    if data.dtype == bool:
        data = data.view(np.uint8)
    elif not np.issubdtype(data.dtype, np.integer):
        if not np.isfinite(data).all():
            raise MedSegError(path, 'label values must be finite, found NaN or inf')
        rounded = np.rint(data)
        off = np.abs(data - rounded)
        if (off > LABEL_ATOL).any():
            bad = data.flat[int(np.argmax(off))]
            raise MedSegError(path, f'label values must be whole numbers, found {bad!r}')
        data = rounded
    if data.size and data.min() < 0:
        raise MedSegError(path, f'label values must be >= 0, found {data.min()}')
    top = int(data.max()) if data.size else 0
    data = data.astype(np.uint8 if top <= np.iinfo(np.uint8).max else np.int64, copy=False)
    spacing = tuple(float(z) for z in image.header.get_zooms()[:data.ndim])
    if not all(z > 0 for z in spacing):
        raise MedSegError(path, f'voxel sizes in the header must be positive, got {spacing}')
    return data, spacing, np.asarray(image.affine, dtype=np.float64)


def present_labels(labels: np.ndarray) -> List[int]:
    """The non-zero label values of a non-negative integer label map."""
    if labels.size and int(labels.max()) <= 65535:
        return [int(v) for v in np.flatnonzero(np.bincount(labels.ravel())) if v != 0]
    return [int(v) for v in np.unique(labels) if v != 0]


def parse_classes(text: str) -> List[int]:
    """``'1,2'`` -> ``[1, 2]`` (positive, unique)."""
    try:
        classes = [int(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise MedSegError('--classes', f'expected comma-separated integers, got {text!r}') from None
    if not classes or any(c <= 0 for c in classes) or len(set(classes)) != len(classes):
        raise MedSegError('--classes', f'expected unique positive class labels, got {text!r}')
    return classes


def parse_tolerances(text: str) -> Tuple[Optional[float], Dict[int, float]]:
    """``'2.0,1:1.0,3:5'`` -> ``(2.0, {1: 1.0, 3: 5.0})``: an optional default and per-class values (mm)."""
    default: Optional[float] = None
    per_class: Dict[int, float] = {}
    try:
        for part in (p.strip() for p in text.split(',') if p.strip()):
            if ':' in part:
                cls, value = part.split(':', 1)
                per_class[int(cls)] = float(value)
            elif default is None:
                default = float(part)
            else:
                raise ValueError(part)
    except ValueError:
        raise MedSegError('--nsd-tolerance', f'expected "MM" and/or "CLASS:MM" items, got {text!r}') from None
    return default, per_class


def resolve_tolerances(classes: Sequence[int], default: Optional[float],
                       per_class: Dict[int, float]) -> Dict[int, float]:
    """Tolerance (mm) of every evaluated class; a class without one is an error."""
    missing = [c for c in classes if c not in per_class and default is None]
    if missing:
        raise MedSegError('--nsd-tolerance', f'no tolerance for class(es) {missing}; add CLASS:MM items '
                                             'or a default value')
    return {c: per_class.get(c, default) for c in classes}


def _check_geometry(gt_path: Path, pred_path: Path, gt: np.ndarray, pred: np.ndarray,
                    gt_affine: np.ndarray, pred_affine: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise MedSegError(pred_path, f'shape {pred.shape} does not match ground truth {gt_path} shape {gt.shape}')
    if not np.allclose(gt_affine, pred_affine, atol=AFFINE_ATOL):
        raise MedSegError(pred_path, f'affine {np.round(pred_affine, 4).tolist()} does not match ground truth '
                                     f'{gt_path} affine {np.round(gt_affine, 4).tolist()}')


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', newline='') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rows_to_csv(rows: Sequence[dict], metrics: Sequence[str] = METRIC_NAMES) -> str:
    """The per-case CSV text (columns ``csv_columns(metrics)``; floats with full precision, NaN as ``nan``)."""
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(csv_columns(metrics))
    for row in rows:
        writer.writerow([row['case'], row['class']] + [repr(float(row[m])) for m in metrics] + [row['empty']])
    return buffer.getvalue()


def flag_settings(data: Path, card: dict) -> Optional[Tuple[List[str], Dict[str, dict], str]]:
    """(flags to score, case → its per-slice values, their source file) of a prepared dataset whose card names
    ``slice_flags.subtypes`` (Cranium's hemorrhage subtypes); None otherwise."""
    from ..manifest import CASES_DIR, SLICE_VALUES

    info = card.get('slice_flags')
    if not isinstance(info, dict) or not info.get('subtypes'):
        return None
    values = {}
    for path in sorted((data / CASES_DIR).glob('*.json')):
        try:
            meta = json.loads(path.read_text()).get('meta') or {}
        except (OSError, ValueError) as exc:
            raise MedSegError(path, f'cannot read case record ({type(exc).__name__}: {exc})') from None
        if meta.get(SLICE_VALUES):
            values[path.stem] = meta[SLICE_VALUES]
    return [str(f) for f in info['subtypes']], values, str(info.get('source', 'slice flags'))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='evaluate_volumes.py', description='Per-case, per-class metrics of predicted NIfTI label maps.',
        epilog='Empty classes (protocol default): both empty -> dice=iou=nsd=1, hd95=assd=0; only one empty -> '
               'dice=iou=nsd=0, hd95=assd=volume diagonal (mm). Every case stays in every mean. Other protocols: '
               'see --protocol.')
    parser.add_argument('--pred', required=True, type=Path, help='folder of predicted label maps (.nii/.nii.gz)')
    truth = parser.add_mutually_exclusive_group(required=True)
    truth.add_argument('--gt', type=Path, help='folder of ground-truth label maps (<case>.nii.gz)')
    truth.add_argument('--data', type=Path, help='a dataset prepared by tools/prepare_dataset.py: the ground truth '
                                                 "is its labels/<case>.nii.gz on the source grid, class names "
                                                 'from its dataset.json')
    parser.add_argument('--split', default=None, help='with --data: score the predicted cases of this split list '
                                                      '(splits.json: test, val, fold2_val, ...; default: all)')
    parser.add_argument('--subtask', default=None,
                        help="with --data of a label store (dataset.json label_store, e.g. covid19's default --subtask "
                             "all): the subtask whose classes the predictions hold (covid19: lung_infection, lung, "
                             "infection); default: the subtask with the fewest classes that holds every predicted "
                             'label')
    parser.add_argument('--out', required=True, type=Path, help='per-case CSV to write')
    parser.add_argument('--nsd-tolerance', default=None,
                        help='NSD tolerance in mm: a default and/or CLASS:MM items, e.g. "1:1.0,2:3.0" or '
                             '"2.0,3:5.0"; without a default every evaluated class needs an item '
                             "(default: the protocol's: covid19 1 mm lungs / 3 mm lesion, others 1.0)")
    parser.add_argument('--classes', default=None,
                        help='comma-separated labels to evaluate (default: every non-zero label in any GT)')
    parser.add_argument('--bootstrap', type=int, default=5000, help='bootstrap resamples for the 95%% CIs (0: no CI)')
    parser.add_argument('--seed', type=int, default=0, help='bootstrap seed (unused by --protocol hemseg)')
    parser.add_argument('--protocol', default='default', choices=protocol_names(), metavar='NAME',
                        help='evaluation protocol: ' + '; '.join(f'{p}: {get_protocol(p).title}'
                                                                  for p in protocol_names()))
    return parser


def run(args: argparse.Namespace) -> str:
    """Evaluate, write the CSV and the summary; returns the summary markdown.

    Without ``--classes`` the ground truths are read once more up front to find their labels, so that
    every class is known (and has an NSD tolerance) before any metric is computed.
    """
    from tqdm import tqdm

    out: Path = args.out
    if out.is_dir():
        raise MedSegError(out, 'is a directory; --out must be a CSV file path')
    spec = get_protocol(getattr(args, 'protocol', 'default'))
    data = getattr(args, 'data', None)
    dataset_names: Dict[int, str] = {}
    first_labels: Optional[List[int]] = None
    store_map: Optional[np.ndarray] = None      # label store code -> class of the subtask (a lookup table)
    subtask_text = ''
    requested = getattr(args, 'subtask', None)
    if data is not None:
        from ..manifest import read_dataset_card

        card = read_dataset_card(data)
        subtasks = label_store_subtasks(data, card)
        if requested is not None and not subtasks:
            raise MedSegError('--subtask', f'{data} has no label store (its labels hold its classes '
                                           f'{", ".join(map(str, card.get("classes") or []))}): leave --subtask out')
        strays: List[str] = []
        pairs, missing = prepared_cases(data, getattr(args, 'split', None), args.pred, strays)
        if missing:
            print(f'warning: {len(missing)} labelled case(s) of split {args.split or "(all)"} have no prediction '
                  f'in {args.pred} and are not scored: {", ".join(missing[:5])}{" ..." if len(missing) > 5 else ""}',
                  file=sys.stderr)
        if strays:
            print(f'warning: {len(strays)} prediction file(s) in {args.pred} match no case of split '
                  f'{args.split or "(all)"} of {data} and are not scored: {", ".join(strays)}', file=sys.stderr)
        if subtasks:
            top = {pred: max(present_labels(load_labels(pred)[0]), default=0)
                   for _, _, pred in tqdm(pairs, desc='reading predicted labels', unit='case', disable=None)}
            subtask = choose_subtask(subtasks, top, requested, data)
            codes, subtask_classes = subtasks[subtask]
            store_map = np.full(max(codes) + 1, -1, dtype=np.int64)
            for code, value in codes.items():
                store_map[code] = value
            dataset_names = {i: n for i, n in enumerate(subtask_classes) if i}
            how = 'as asked (--subtask)' if requested else (
                f'the smallest subtask holding every predicted label (largest {max(top.values(), default=0)}); '
                '--subtask to choose')
            subtask_text = f'; the label store\'s codes read as subtask {subtask} ({", ".join(subtask_classes)})'
            print(f'scoring subtask {subtask} ({", ".join(subtask_classes)}): {how}', file=sys.stderr)
        else:
            dataset_names = {i: str(n) for i, n in enumerate(card.get('classes') or []) if i}
    else:
        if getattr(args, 'split', None):
            raise MedSegError('--split', 'needs --data (a prepared dataset)')
        if requested is not None:
            raise MedSegError('--subtask', 'needs --data (a prepared dataset with a label store)')
        pairs = pair_cases(args.gt, args.pred)
    if args.classes is not None:
        classes = parse_classes(args.classes)
    elif dataset_names:
        classes = sorted(dataset_names)
    else:
        found: set = set()
        for i, (_, gt_path, _) in enumerate(tqdm(pairs, desc='scanning labels', unit='case', disable=None)):
            present = present_labels(load_labels(gt_path)[0])
            first_labels = present if i == 0 else first_labels
            found.update(present)
        classes = sorted(found)
        if not classes:
            raise MedSegError(args.gt, 'no non-zero label in any ground truth; pass --classes')
    if dataset_names:
        names = dataset_names
    else:  # the protocol may read class meanings off the first ground truth's largest label (covid19)
        if first_labels is None:
            first_labels = present_labels(load_labels(pairs[0][1])[0])
        names = spec.class_names(max(first_labels, default=0))
    if args.nsd_tolerance is None:
        tolerances = spec.tolerances(classes, names) if 'nsd' in spec.metrics else {c: 0.0 for c in classes}
    else:
        tolerances = resolve_tolerances(classes, *parse_tolerances(args.nsd_tolerance))

    flags = flag_settings(data, card) if data is not None else None
    flag_rows: List[dict] = []
    rows: List[dict] = []
    for case, gt_path, pred_path in tqdm(pairs, desc='evaluating', unit='case', disable=None):
        gt, spacing, gt_affine = load_labels(gt_path)
        if store_map is not None:
            unknown = [v for v in present_labels(gt) if v >= store_map.size or store_map[v] < 0]
            if unknown:
                raise MedSegError(gt_path, f'holds code {unknown[0]}, not one of the label store\'s')
            gt = store_map[gt].astype(np.uint8)
        pred, _, pred_affine = load_labels(pred_path)
        _check_geometry(gt_path, pred_path, gt, pred, gt_affine, pred_affine)
        try:
            scored = case_metrics(gt, pred, spacing, classes, tolerances, spec.name, names, gt_affine)
        except MedSegError as exc:
            raise MedSegError(gt_path if exc.path is None else exc.path, exc.problem) from None
        rows.extend({'case': case, **row} for row in scored)
        if flags is not None and flags[1].get(case):
            try:
                flag_rows.extend(case_flag_rows(case, gt, pred, flags[1][case], flags[0], classes))
            except MedSegError as exc:
                raise MedSegError(data / 'cases' / f'{case}.json', exc.problem) from None

    summary = summarize(rows, n_bootstrap=args.bootstrap, seed=args.seed, protocol=spec)
    label = {c: f'{c} ({names[c]})' for c in classes if c in names}
    label.update({u: f'{u} ({" ∪ ".join(f"{c} {names[c]}" for c in members)})'
                  for u, members in spec.unions(names, classes).items()})
    truth = args.gt if data is None else f'{data}/labels/ (split {args.split or "all"}){subtask_text}'
    tol_text = ', '.join(f'{c}: {t:g}' for c, t in tolerances.items()) if 'nsd' in spec.metrics else 'no NSD'
    report = (f'# Volume metrics ({len(pairs)} cases, protocol {spec.name})\n\n'
              f'Ground truth: `{truth}`; predictions: `{args.pred}`. NSD tolerance (mm) per class: {tol_text}.\n'
              f'Protocol {spec.name}: {spec.title}. Reproduces: {spec.source}. Spacing: {spec.spacing_rule}. '
              f'Grid: {spec.grid_rule}. Empty structures: {spec.empty_rule}.\n\n'
              + format_summary_markdown(summary, label))
    by_site = summarize_by_site(rows, spec)
    if by_site:
        report += '\n## Per site\n\n' + format_site_markdown(by_site, label)
    if flag_rows:
        report += ('\n## Per slice flag\n\n'
                   + format_flags_markdown(summarize_flags(flag_rows, flags[0]), label, f'`{flags[2]}`'))
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, rows_to_csv(rows, spec.metrics))
    _write_atomic(out.with_name(f'{out.stem}_summary.md'), report)
    if spec.name == 'nnunet':  # nnU-Net's own summary.json beside --out
        import json

        from .protocols.nnunet import summary_json
        files = {case: (str(gt_path), str(pred_path)) for case, gt_path, pred_path in pairs}
        _write_atomic(out.with_name('summary.json'),
                      json.dumps(summary_json(rows, files), indent=4, sort_keys=True) + '\n')
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 bad input, 2 bad option like argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bootstrap < 0:
        parser.error(f'--bootstrap must be >= 0 (0: no CI), got {args.bootstrap}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    try:
        report = run(args)
    except MedSegError as exc:
        message = ' '.join(str(exc).split('\n'))
        print(f'error: {message}', file=sys.stderr)
        return 1
    print(report, end='')
    return 0
