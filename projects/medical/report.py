"""``tools/report.py DIR``: one self-contained HTML page (``DIR/report.html``) people can browse after a test.

``DIR`` is a ``mim test … --out DIR`` folder (``DIR/volumes/metrics.csv`` and ``DIR/volumes/<case>.nii.gz``
written by ``VolumeMetric``, slice PNGs by ``IoUMetric``) or a benchmark work dir (``results.md`` /
``results.csv`` / ``results.png``, fold presets ``fold_table.{md,csv,png}``), or both. The page holds:

- the run: config (and its dump), checkpoint, evaluation protocol with its rules, prepared dataset, test cases;
- the per-case table, one ``<tr data-case="CASE">`` per case, one column per (class, metric) with the
  values of ``metrics.csv`` (``data-value`` keeps them at full precision), sorted by clicking a header;
- the summary per class and the distribution of each metric per class (box + strip plot, units on the axis);
- overlays of the best, median and worst cases by Dice (slices through the structure: the slice, the truth and
  the prediction side by side, each class in the dataset's colour and named in the legend) and of the slices where prediction and truth disagree most, built from the
  prepared slices and the predicted volume mapped back onto them (what the metrics scored);
- for a benchmark work dir, its comparison tables and charts.

Pictures are embedded as ``data:`` URIs and the page loads nothing else (its Content-Security-Policy forbids
it). Where the run facts come from, first found wins: the command-line options, ``DIR/run.json`` (written by
``VolumeMetric`` with ``metrics.csv``, absolute paths), the newest ``mim test`` log whose config wrote to ``DIR``
(looked for in ``--work-dir``, ``DIR`` and ``DIR/..``), that run's config, and the training config the
checkpoint carries (``--checkpoint CKPT`` alone is enough). Bad input is one
:class:`~mmseg_medical.errors.MedSegError`; the page is written through a temporary file and ``os.replace``.
"""
from __future__ import annotations

import argparse
import base64
import csv
import datetime
import html
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import MedSegError

PathLike = Union[str, Path]
REPORT_NAME = 'report.html'
#: Run facts written next to the predictions by ReportHook (read back by ``tools/report.py``).
RUN_INFO_NAME = 'run.json'
METRICS_CSV = Path('volumes') / 'metrics.csv'
#: Benchmark runner outputs shown as tables (markdown) and charts (PNG), in this order.
BENCHMARK_TABLES = ('results.md', 'fold_table.md')
BENCHMARK_CHARTS = ('results.png', 'fold_table.png')
OVERLAY_SLICES = 3
DISAGREEMENT_SLICES = 6
_PROTOCOL_LINE = re.compile(r'volume metrics over (\d+) cases, protocol (\S+)')
_CHECKPOINT_LINE = re.compile(r'Load checkpoint from (\S+)')


# ---- the run ---------------------------------------------------------------------------------------------------
@dataclass
class RunInfo:
    """What the report says about the run; ``sources`` names where each fact was found."""

    config: Optional[str] = None
    config_text: Optional[str] = None
    checkpoint: Optional[str] = None
    protocol: Optional[str] = None
    data_root: Optional[str] = None
    split_file: Optional[str] = None
    work_dir: Optional[str] = None
    log: Optional[str] = None
    sources: Dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value, source: str) -> None:
        """Fill ``name`` unless an earlier (higher-priority) source did."""
        if value not in (None, '') and getattr(self, name) in (None, ''):
            setattr(self, name, str(value))
            self.sources[name] = source

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop('config_text')
        data.pop('sources')
        return data


def _logs(folder: Path) -> List[Path]:
    """mmengine run logs of a work dir (``<timestamp>/<timestamp>.log``), oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob('*/*.log') if p.stem == p.parent.name)


def _config_block(log_text: str) -> Optional[str]:
    """The config mmengine printed into its log (between ``Config:`` and the next log line)."""
    match = re.search(r' - Config:\n(.*?)(?=^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d - )', log_text, re.S | re.M)
    return match.group(1).rstrip() + '\n' if match else None


def _same_dir(written: str, out_dir: Path, base: Path) -> bool:
    path = Path(written)
    return (path if path.is_absolute() else base / path).resolve() == out_dir.resolve()


def _config_values(text: str) -> dict:
    """``test_dataloader.dataset`` data_root / ann_file and the VolumeMetric protocol of a config dump."""
    from mmengine.config import Config

    try:
        cfg = Config.fromstring(text, '.py')
    except Exception as exc:  # a dump that does not parse: the facts stay unknown
        return {'error': f'{type(exc).__name__}: {exc}'}
    out = {}
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    out['data_root'] = dataset.get('data_root')
    out['ann_file'] = dataset.get('ann_file')
    out['load_from'] = cfg.get('load_from')
    evaluator = cfg.get('test_evaluator') or {}
    metrics = evaluator.get('metrics', evaluator) if isinstance(evaluator, dict) else evaluator
    for metric in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
        if isinstance(metric, dict) and str(metric.get('type', '')).endswith('VolumeMetric'):
            out['protocol'] = metric.get('protocol', 'default')
            out['metric_data_root'] = metric.get('data_root')
    return out


def find_run_info(out_dir: PathLike, config: Optional[PathLike] = None, checkpoint: Optional[PathLike] = None,
                  data: Optional[PathLike] = None, protocol: Optional[str] = None,
                  work_dir: Optional[PathLike] = None) -> RunInfo:
    """The run's facts for ``out_dir`` (see the module docstring for the order of the sources)."""
    out_dir = Path(out_dir)
    info = RunInfo()
    info.set('config', config, 'option --config')
    info.set('checkpoint', checkpoint, 'option --checkpoint')
    info.set('data_root', None if data is None else Path(data).resolve(), 'option --data')
    info.set('protocol', protocol, 'option --protocol')
    info.set('work_dir', None if work_dir is None else Path(work_dir).resolve(), 'option --work-dir')
    run_json = out_dir / RUN_INFO_NAME
    if run_json.is_file():
        try:
            stored = json.loads(run_json.read_text())
        except ValueError as exc:
            raise MedSegError(run_json, f'not valid JSON ({exc})') from None
        for key in ('config', 'checkpoint', 'protocol', 'data_root', 'split_file', 'work_dir', 'log'):
            info.set(key, stored.get(key), RUN_INFO_NAME)
    # the newest mim test log whose config wrote its predictions to out_dir
    folders = [Path(info.work_dir)] if info.work_dir else []
    folders += [out_dir, out_dir.parent]
    log, log_source = (Path(info.log), info.sources['log']) if info.log and Path(info.log).is_file() else (None, '')
    if log is None:
        candidates = sorted({p for folder in folders for p in _logs(folder)}, key=lambda p: p.stem)
        for candidate in reversed(candidates):
            written = re.findall(r"output_dir='([^']*)'", _config_block(candidate.read_text(errors='replace')) or '')
            if any(_same_dir(w, out_dir, Path.cwd()) or _same_dir(w, out_dir, candidate.parents[1]) for w in written):
                log, log_source = candidate, f'the newest mim test log whose config wrote to {out_dir}'
                break
    if log is None and info.sources.get('work_dir', '').startswith('option'):
        # the work dir was named: its newest test log, even if the predictions were moved since
        tested = [p for p in _logs(Path(info.work_dir)) if _PROTOCOL_LINE.search(p.read_text(errors='replace'))]
        if tested:
            log, log_source = tested[-1], 'the newest mim test log in --work-dir'
    if log is not None:
        text = log.read_text(errors='replace')
        info.set('log', log.resolve(), log_source)
        info.set('work_dir', log.parents[1].resolve(), f'log {log.name}')
        protocols = _PROTOCOL_LINE.findall(text)
        if protocols:
            info.set('protocol', protocols[-1][1], f"log line 'volume metrics over …, protocol …' ({log.name})")
        loaded = _CHECKPOINT_LINE.findall(text)
        if loaded:
            info.set('checkpoint', loaded[-1], f"log line 'Load checkpoint from …' ({log.name})")
        dump = _config_block(text)
        if dump:
            info.config_text = dump
            info.sources.setdefault('config_text', f'config printed in {log.name}')
    if info.config and info.config_text is None and Path(info.config).is_file():
        info.config_text = Path(info.config).read_text(errors='replace')
        info.sources['config_text'] = 'the config file'
    if info.config is None and info.work_dir:  # mmengine dumps the config as <work_dir>/<config name>.py
        dumps = sorted(Path(info.work_dir).glob('*.py'))
        if len(dumps) == 1:
            info.set('config', dumps[0], 'config dump in the work dir')
            if info.config_text is None:
                info.config_text = dumps[0].read_text(errors='replace')
                info.sources['config_text'] = 'config dump in the work dir'
    if info.config_text is None and info.checkpoint and Path(info.checkpoint).is_file():
        # a checkpoint alone: the training config it carries (mmengine's meta['cfg'])
        from .checkpoints import read_checkpoint, training_config_text

        text = training_config_text(read_checkpoint(info.checkpoint))
        if text:
            info.config_text = text
            info.sources['config_text'] = "training config in the checkpoint (meta['cfg'])"
    if info.config_text:
        values = _config_values(info.config_text)
        source = info.sources.get('config_text', 'config')
        info.set('protocol', values.get('protocol'), f'VolumeMetric in the {source}')
        info.set('checkpoint', values.get('load_from'), f'load_from in the {source}')
        root = values.get('metric_data_root') or values.get('data_root')
        if root and info.data_root is None:
            path = Path(root)
            bases = [Path.cwd()] + ([Path(info.work_dir).parent] if info.work_dir else [])
            for base in ([Path('/')] if path.is_absolute() else bases):
                if (base / path / 'manifest.csv').is_file():
                    info.set('data_root', (base / path).resolve(), f'data_root in the {source}')
                    break
            else:
                info.sources['data_root_missing'] = str(root)
        if values.get('ann_file') and info.split_file is None:
            info.set('split_file', values['ann_file'], f'test_dataloader ann_file in the {source}')
    return info


# ---- per-case metrics ------------------------------------------------------------------------------------------
#: A scored structure: a class index or the name of a union of classes
#: (:data:`mmseg_medical.evaluation.protocols.Structure`).
Structure = Union[int, str]


@dataclass
class CaseTable:
    """``metrics.csv``: its metric columns (protocol order) and ``values[case][class][metric]`` (floats) plus
    ``raw`` (the CSV text of each value) and ``empty[case][class]``. ``classes`` are the scored structures:
    class indices, then the unions of classes a protocol adds by name (crossMoDA 2023: ``vs``)."""

    path: Path
    metrics: List[str]
    classes: List[Structure]
    cases: List[str]
    values: Dict[str, Dict[Structure, Dict[str, float]]]
    raw: Dict[str, Dict[Structure, Dict[str, str]]]
    empty: Dict[str, Dict[Structure, str]]

    @property
    def label_classes(self) -> List[int]:
        """The class indices (label values) among the structures."""
        return [c for c in self.classes if isinstance(c, int)]


def read_case_table(path: PathLike) -> CaseTable:
    """Read and check ``metrics.csv`` (columns ``case,class,<metrics>,empty``)."""
    from .evaluation.protocols import METRIC_UNITS, structure_key, structure_order

    path = Path(path)
    if not path.is_file():
        raise MedSegError(path, 'no per-case metrics: run mim test with --out DIR (and a VolumeMetric in the '
                                'test_evaluator), then tools/report.py DIR')
    with open(path, newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = list(reader)
    if not header or header[:2] != ['case', 'class'] or header[-1] != 'empty' or len(header) < 4:
        raise MedSegError(path, f'columns must be case,class,<metrics>,empty; got {header}')
    metrics = header[2:-1]
    unknown = [m for m in metrics if m not in METRIC_UNITS]
    if unknown:
        raise MedSegError(path, f'unknown metric columns {unknown} (known: {", ".join(METRIC_UNITS)})')
    if not rows:
        raise MedSegError(path, 'no case rows')
    values: Dict[str, Dict[int, Dict[str, float]]] = {}
    raw: Dict[str, Dict[int, Dict[str, str]]] = {}
    empty: Dict[str, Dict[int, str]] = {}
    classes: List[int] = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise MedSegError(path, f'line {line}: {len(row)} fields, expected {len(header)}')
        case, cls = row[0], row[1]
        try:
            cls = structure_key(cls)
            numbers = [float(v) for v in row[2:-1]]
        except ValueError as exc:
            raise MedSegError(path, f'line {line}: {exc}') from None
        if cls in values.get(case, {}):
            raise MedSegError(path, f'line {line}: case {case} class {cls} occurs twice')
        values.setdefault(case, {})[cls] = dict(zip(metrics, numbers))
        raw.setdefault(case, {})[cls] = dict(zip(metrics, row[2:-1]))
        empty.setdefault(case, {})[cls] = row[-1]
        if cls not in classes:
            classes.append(cls)
    classes.sort(key=structure_order)
    cases = sorted(values)
    missing = [f'{case}/{c}' for case in cases for c in classes if c not in values[case]]
    if missing:
        raise MedSegError(path, f'rows missing for case/class {", ".join(missing[:5])}')
    return CaseTable(path, metrics, classes, cases, values, raw, empty)


def mean_dice(table: CaseTable, case: str) -> float:
    """Mean Dice of a case over its classes (NaN left out; NaN when none; unions of classes not counted twice);
    the first metric without Dice."""
    metric = 'dice' if 'dice' in table.metrics else table.metrics[0]
    column = [table.values[case][c][metric] for c in table.label_classes]
    finite = [v for v in column if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float('nan')


def ranked_cases(table: CaseTable) -> List[Tuple[str, str]]:
    """``[(role, case)]`` for the best, median and worst case by mean Dice (distinct cases; NaN left out)."""
    scored = sorted((c for c in table.cases if math.isfinite(mean_dice(table, c))),
                    key=lambda c: (-mean_dice(table, c), c))
    if not scored:
        return []
    picks = [('best', scored[0]), ('median', scored[(len(scored) - 1) // 2]), ('worst', scored[-1])]
    out: List[Tuple[str, str]] = []
    for role, case in picks:
        for i, (r, c) in enumerate(out):
            if c == case:
                out[i] = (f'{r} and {role}', c)
                break
        else:
            out.append((role, case))
    return out


# ---- the prepared dataset and the predicted volumes ------------------------------------------------------------
def dataset_classes(root: Path) -> List[str]:
    from .manifest import read_dataset_card

    classes = read_dataset_card(root).get('classes')
    if not isinstance(classes, list):
        raise MedSegError(root / 'dataset.json', f'cannot read the class names (no "classes" list: {classes!r})')
    return classes


def split_list_cases(root: Path, split_file: Optional[str]) -> Optional[List[str]]:
    """The cases of the test split list (``ann_file``: slice stems) via the manifest; None without one."""
    from .manifest import read_manifest

    if not split_file:
        return None
    path = Path(split_file)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise MedSegError(path, 'the test split list of the config is not in the prepared dataset')
    stems = {line.strip() for line in path.read_text().splitlines() if line.strip()}
    by_stem = {r.stem: r.case_id for r in read_manifest(root)}
    unknown = sorted(stems - set(by_stem))
    if unknown:
        raise MedSegError(path, f'slices not in the manifest: {", ".join(unknown[:3])}')
    return sorted({by_stem[s] for s in stems})


def prediction_on_slices(volume_path: Path, geometry: dict) -> np.ndarray:
    """A prediction on the source scan's grid (``DIR/volumes/<case>.nii.gz``) → the prepared slice grid
    (``(Z, H, W)`` of ``cases/<case>.json``): the display reorientation, then the converter's in-plane
    resampling (nearest) and centre crop, as ``prepare`` made the slices. Inverse of ``to_source_grid``."""
    from .io.nifti import read_nifti
    from .orientation import to_display
    from .spatial import center_crop, resample_inplane

    volume = read_nifti(volume_path)
    record = geometry.get('display_transform')
    array = to_display(volume, record).array if record else volume.array
    spatial = geometry.get('spatial')
    if spatial:
        if spatial.get('spacing') is not None:
            array = resample_inplane(array, spatial['display_spacing_xy'], spatial['spacing'], nearest=True)
        if spatial.get('crop') is not None:
            array, _ = center_crop(array, spatial['crop'])
    if list(array.shape) != list(geometry['shape_zhw']):
        raise MedSegError(volume_path, f'prediction maps to slices of shape {list(array.shape)}, the case has '
                                       f'{list(geometry["shape_zhw"])} (cases/<case>.json): not this dataset?')
    return np.ascontiguousarray(array)


def _read_png(path: Path) -> np.ndarray:
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise MedSegError(path, 'cannot read PNG')
    return array


@dataclass
class CaseSlices:
    """One case on the prepared slice grid: images (grey), truth and prediction per slice index."""

    case: str
    images: Dict[int, np.ndarray]
    truth: np.ndarray
    pred: np.ndarray
    prediction_source: str


def load_case(root: Path, out_dir: Path, case: str, records) -> CaseSlices:
    """Images and masks from the prepared dataset; the prediction from ``DIR/volumes/<case>.nii.gz`` (what
    was scored), else from the slice PNGs ``DIR/<slice stem>.png``."""
    from .manifest import read_case_geometry, restack

    geometry = read_case_geometry(root, case)
    rows = [r for r in records if r.mask]
    if not rows:
        raise MedSegError(root / 'manifest.csv', f'case {case} has no labelled slices')
    truth = restack({r.slice_index: _read_png(root / r.mask) for r in rows}, geometry).array
    images = {r.slice_index: _read_png(root / r.image) for r in rows}
    volume = out_dir / 'volumes' / f'{case}.nii.gz'
    if volume.is_file():
        pred, source = prediction_on_slices(volume, geometry), f'volumes/{case}.nii.gz'
    else:
        missing = [r.stem for r in rows if not (out_dir / f'{r.stem}.png').is_file()]
        if missing:
            raise MedSegError(volume, f'no predicted volume for case {case}, and no slice prediction '
                                      f'{out_dir / (missing[0] + ".png")} either')
        pred = restack({r.slice_index: _read_png(out_dir / f'{r.stem}.png') for r in rows}, geometry).array
        source = 'slice PNGs'
    return CaseSlices(case, images, truth, pred, source)


# ---- HTML ------------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:1.5em auto;max-width:1200px;
 color:#1d1d1f;padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0} th,td{border:1px solid #d0d0d0;padding:.25em .55em}
th{background:#f3f4f6} td.num{text-align:right;font-variant-numeric:tabular-nums}
th.sortable{cursor:pointer;user-select:none} th.sortable:hover{background:#e3e8f0}
th[aria-sort=ascending]::after{content:" \\25B2"} th[aria-sort=descending]::after{content:" \\25BC"}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1em} dl.run dt{font-weight:600}
dl.run dd{margin:0;word-break:break-all} .src{color:#666;font-size:.85em}
.warn{background:#fff4e5;border-left:4px solid #f59e0b;padding:.5em .8em}
figure{margin:1em 0} figcaption{font-size:.9em;color:#444} img{max-width:100%;height:auto}
.swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin:0 .2em 0 .6em}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:.8em;max-height:30em} code{font-size:.95em}
"""

_JS = """
(function(){
  function key(cell){
    var v = cell.getAttribute('data-value');
    if (v === null) return cell.textContent;
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }
  function sortBy(th){
    var table = th.closest('table'), body = table.tBodies[0];
    var col = parseInt(th.getAttribute('data-col'), 10);
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    table.querySelectorAll('th[data-col]').forEach(function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = key(a.cells[col]), y = key(b.cells[col]);
      var tie = a.getAttribute('data-case').localeCompare(b.getAttribute('data-case'));
      if (x === null || y === null) return (x === null) - (y === null) || tie;
      if (typeof x === 'string') return dir * x.localeCompare(y) || tie;
      return dir * (x - y) || tie;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  }
  document.querySelectorAll('th.sortable').forEach(function(th){
    th.addEventListener('click', function(){ sortBy(th); });
  });
})();
"""

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def metric_title(metric: str) -> str:
    """Column title: ``Dice (0–1)``, ``HD95 (mm)``."""
    from .evaluation.protocols import METRIC_KEYS, METRIC_UNITS

    unit = METRIC_UNITS[metric]
    return f'{METRIC_KEYS[metric]} ({"0–1" if unit == "fraction" else unit})'


def format_value(metric: str, value: float) -> str:
    """The text of a table cell: fractions with 4 decimals, distances with 2; ``NaN`` / ``inf`` spelled out."""
    from .evaluation.protocols import METRIC_UNITS

    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return 'inf' if value > 0 else '-inf'
    return f'{value:.4f}' if METRIC_UNITS[metric] == 'fraction' else f'{value:.2f}'


def _data_value(text: str) -> str:
    """``data-value`` keeps the CSV text; infinities in the spelling JavaScript's parseFloat reads."""
    value = float(text)
    return ('Infinity' if value > 0 else '-Infinity') if math.isinf(value) else text


def case_table_html(table: CaseTable, names: Dict[int, str]) -> str:
    head1 = ['<th rowspan="2" class="sortable" data-col="0">case</th>']
    head2 = []
    col = 1
    for c in table.classes:
        head1.append(f'<th colspan="{len(table.metrics) + 1}">{_e(names[c])} '
                     f'({f"class {c}" if isinstance(c, int) else "union of classes"})</th>')
        for m in table.metrics:
            head2.append(f'<th class="sortable" data-col="{col}" data-class="{_e(names[c])}" data-metric="{m}">'
                         f'{_e(metric_title(m))}</th>')
            col += 1
        head2.append(f'<th class="sortable" data-col="{col}" data-class="{_e(names[c])}" data-metric="empty" '
                     'title="empty masks: both_empty, gt_empty, pred_empty or none">empty</th>')
        col += 1
    body = []
    for case in table.cases:
        cells = [f'<td>{_e(case)}</td>']
        for c in table.classes:
            for m in table.metrics:
                text = table.raw[case][c][m]
                cells.append(f'<td class="num" data-value="{_e(_data_value(text))}">'
                             f'{format_value(m, float(text))}</td>')
            cells.append(f'<td>{_e(table.empty[case][c] or "–")}</td>')
        body.append(f'<tr data-case="{_e(case)}">' + ''.join(cells) + '</tr>')
    return ('<table id="cases"><thead><tr>' + ''.join(head1) + '</tr><tr>' + ''.join(head2) + '</tr></thead>'
            '<tbody>' + '\n'.join(body) + '</tbody></table>')


def summary_html(table: CaseTable, names: Dict[int, str]) -> str:
    """Per class and metric: n, mean ± sample std, median [Q1, Q3], min, max over cases (NaN left out)."""
    rows = []
    for c in table.classes:
        for m in table.metrics:
            column = np.array([table.values[case][c][m] for case in table.cases], dtype=float)
            kept = column[~np.isnan(column)]
            if len(kept):
                q1, med, q3 = np.percentile(kept, [25, 50, 75])
                std = float(kept.std(ddof=1)) if len(kept) > 1 else 0.0
                cells = [f'{format_value(m, float(kept.mean()))} ± {format_value(m, std)}',
                         f'{format_value(m, med)} [{format_value(m, q1)}, {format_value(m, q3)}]',
                         format_value(m, float(kept.min())), format_value(m, float(kept.max()))]
            else:
                cells = ['–'] * 4
            rows.append(f'<tr><td>{_e(names[c])}</td><td>{_e(metric_title(m))}</td>'
                        f'<td class="num">{len(kept)}</td>' + ''.join(f'<td class="num">{x}</td>' for x in cells)
                        + '</tr>')
    return ('<table id="summary"><thead><tr><th>class</th><th>metric</th><th>n</th><th>mean ± std</th>'
            '<th>median [Q1, Q3]</th><th>min</th><th>max</th></tr></thead><tbody>' + '\n'.join(rows)
            + '</tbody></table>')


def markdown_html(text: str) -> str:
    """The benchmark runner's markdown (headings, pipe tables, paragraphs, ``code``, **bold**) as HTML."""
    def inline(s: str) -> str:
        s = _e(s)
        s = re.sub(r'`([^`]+)`', r'<code>\1</code>', s)
        return re.sub(r'\*\*([^*]+)\*\*', r'<strong>\1</strong>', s)

    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith('|'):
            block = []
            while i < len(lines) and lines[i].strip().startswith('|'):
                block.append([cell.strip() for cell in lines[i].strip().strip('|').split('|')])
                i += 1
            rule = len(block) > 1 and all(re.fullmatch(r':?-+:?', cell) for cell in block[1] if cell)
            head, rows = (block[0], block[2:]) if rule else ([], block)
            right = [cell.endswith(':') for cell in block[1]] if rule else []
            parts = ['<table class="bench">']
            if head:
                parts.append('<thead><tr>' + ''.join(f'<th>{inline(h)}</th>' for h in head) + '</tr></thead>')
            parts.append('<tbody>')
            for row in rows:
                cells = [('<td class="num">' if k < len(right) and right[k] else '<td>') + inline(cell) + '</td>'
                         for k, cell in enumerate(row)]
                parts.append('<tr>' + ''.join(cells) + '</tr>')
            out.append(''.join(parts) + '</tbody></table>')
            continue
        heading = re.match(r'(#{1,6})\s+(.*)', line)
        if heading:
            level = min(6, len(heading.group(1)) + 2)
            out.append(f'<h{level}>{inline(heading.group(2))}</h{level}>')
        elif line:
            out.append(f'<p>{inline(line)}</p>')
        i += 1
    return '\n'.join(out)


def _progress(items, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit='case', disable=None, file=sys.stderr)


# ---- sections --------------------------------------------------------------------------------------------------
def _run_section(info: RunInfo, out_dir: Path, names: Dict[int, str], n_cases: Optional[int],
                 warnings: List[str]) -> str:
    from .evaluation.protocols import get_protocol

    def row(label: str, value: Optional[str], key: Optional[str] = None, extra: str = '') -> str:
        shown = _e(value) if value else '<em>not recorded</em>'
        source = info.sources.get(key or '', '')
        note = f' <span class="src">({_e(source)})</span>' if source and value else ''
        return f'<dt>{_e(label)}</dt><dd>{shown}{note}{extra}</dd>'

    protocol_extra = ''
    if info.protocol:
        try:
            spec = get_protocol(info.protocol)
        except Exception as exc:  # an unknown name in an old log: say so, keep the name
            protocol_extra = f'<br><span class="src">not a registered protocol ({_e(exc)})</span>'
        else:
            protocol_extra = ('<br>' + _e(spec.title) + '<br><span class="src">'
                              + '; '.join(_e(f'{k}: {v}') for k, v in (
                                  ('metrics', ', '.join(spec.metrics)), ('spacing', spec.spacing_rule),
                                  ('grid', spec.grid_rule), ('empty structures', spec.empty_rule),
                                  ('NSD tolerance', spec.tolerance_rule), ('aggregation', spec.aggregation_rule),
                                  ('source', spec.source))) + '</span>')
    parts = ['<dl class="run">',
             row('predictions', str(out_dir.resolve())),
             row('config', info.config, 'config'),
             row('checkpoint', info.checkpoint, 'checkpoint'),
             row('evaluation protocol', info.protocol, 'protocol', protocol_extra),
             row('prepared dataset', info.data_root, 'data_root',
                 ('<br><span class="src">classes: ' + _e(', '.join(f'{c} {n}' for c, n in names.items()))
                  + '</span>') if names else ''),
             row('test split list', info.split_file, 'split_file'),
             row('cases scored', None if n_cases is None else str(n_cases)),
             row('work dir', info.work_dir, 'work_dir'),
             row('log', info.log, 'log'),
             '</dl>']
    if info.config_text:
        parts.append(f'<details><summary>config as run ({len(info.config_text.splitlines())} lines; '
                     f'{_e(info.sources.get("config_text", ""))})</summary><pre>{_e(info.config_text)}</pre></details>')
    parts += [f'<p class="warn">{_e(w)}</p>' for w in warnings]
    return '\n'.join(parts)


def _case_sections(table: CaseTable, root: Path, out_dir: Path, names: Dict[int, str]) -> str:
    from .evaluation.protocols import METRIC_UNITS
    from .manifest import group_by_case, read_manifest
    from .report_figures import disagreement, distribution_plot, overlay_panels, slices_through
    from .visualization import dataset_classes as classes_and_colours
    from .visualization import class_colours

    units = {m: METRIC_UNITS[m] for m in table.metrics}
    values = {m: {names[c]: [table.values[case][c][m] for case in table.cases] for c in table.classes}
              for m in table.metrics}
    parts = ['<h2 id="per-case">Per case</h2>',
             '<p>One row per case, one column per class and metric, the values of '
             f'<code>{_e(table.path)}</code>. Dice, IoU and NSD are fractions (0–1), distances in the unit their '
             'header names. Click a header to sort by it (again to reverse).</p>',
             case_table_html(table, names),
             '<h2 id="distribution">Distribution per class</h2>', summary_html(table, names),
             '<figure>' + _img(distribution_plot(values, units), 'distribution of each metric per class')
             + '<figcaption>Each metric per class over the cases: box = quartiles, whiskers = 1.5 IQR, red line = '
               'median, points = cases. Fractions on a 0–1 axis.</figcaption></figure>']
    manifest = group_by_case(read_manifest(root))
    unknown = [c for c in table.cases if c not in manifest]
    if unknown:
        raise MedSegError(root / 'manifest.csv', f'cases of {table.path} not in the prepared dataset: '
                                                 f'{", ".join(unknown[:5])} (pass --data with the dataset tested)')
    classes = table.label_classes
    all_names, palette = classes_and_colours(root)
    colours = class_colours(all_names, palette)
    legend = ('each slice plain, with the ground truth and with the prediction; every class tinted and outlined in '
              "the dataset's colour: " + ', '.join(
                  f'<span class="swatch" data-class="{_e(names[c])}" style="background:rgb{tuple(colours[c])}">'
                  f'</span>{_e(names[c])}' for c in classes))
    roles = dict((case, role) for role, case in ranked_cases(table))
    worst: List[tuple] = []   # (pixels, case, slice, panel) of the most disagreeing slices so far
    overlays: Dict[str, str] = {}
    for case in _progress(table.cases, 'report: cases'):
        data = load_case(root, out_dir, case, manifest[case])
        counts = disagreement(data.truth, data.pred, classes)
        worst.extend((int(n), case, int(k), (data.images[k], data.truth[k], data.pred[k],
                                             f'case {case} slice {k}: {int(n)} px differ'))
                     for k, n in enumerate(counts) if n > 0)
        worst = sorted(worst, key=lambda t: (-t[0], t[1], t[2]))[:DISAGREEMENT_SLICES]
        if case in roles:
            dice = mean_dice(table, case)
            panels = [(data.images[k], data.truth[k], data.pred[k], f'slice {k}')
                      for k in slices_through(data.truth, data.pred, classes, OVERLAY_SLICES)]
            title = f'{roles[case]} case {case}: mean Dice {dice:.4f}'
            overlays[case] = ('<figure>' + _img(overlay_panels(panels, classes, all_names, palette), title)
                              + f'<figcaption>{_e(title)} (prediction from {_e(data.prediction_source)}); '
                                f'{legend}.</figcaption></figure>')
    parts += ['<h2 id="overlays">Best, median and worst cases</h2>',
              '<p>Cases ranked by their mean Dice over the classes; a few slices through the structure (where truth '
              'or prediction has a scored class). The prediction is the scored volume mapped back onto the '
              f'prepared slices; {legend}.</p>']
    parts += [overlays[case] for _, case in ranked_cases(table)] or ['<p>No case has a Dice value.</p>']
    parts.append('<h2 id="disagreement">Slices where prediction and truth disagree most</h2>')
    if worst:
        panels = [t[3] for t in worst]
        listed = ', '.join(f'case {_e(case)} slice {k} ({n} px)' for n, case, k, _ in worst)
        caption = (f'The {len(worst)} slices with the most pixels where prediction and truth differ on a scored '
                   f'class, over all cases: {listed}; {legend}.')
        parts.append('<figure>' + _img(overlay_panels(panels, classes, all_names, palette),
                                       'slices where prediction and truth disagree most')
                     + f'<figcaption>{caption}</figcaption></figure>')
    else:
        parts.append('<p>Prediction and truth agree on every slice of every case.</p>')
    return '\n'.join(parts)


def _benchmark_section(out_dir: Path, exclude: set) -> Optional[str]:
    tables = [out_dir / name for name in BENCHMARK_TABLES if (out_dir / name).is_file()]
    has_csv = (out_dir / 'results.csv').is_file() or (out_dir / 'fold_table.csv').is_file()
    if not tables and not has_csv:
        return None
    charts = [out_dir / name for name in BENCHMARK_CHARTS if (out_dir / name).is_file()]
    # other charts the runner draws beside its tables (one per metric), not the slice predictions
    charts += sorted(p for p in out_dir.glob('*.png') if p not in charts and p.stem not in exclude)
    parts = ['<h2 id="benchmark">Benchmark comparison</h2>']
    for path in tables:
        parts.append(f'<p class="src">{_e(path.name)}</p>' + markdown_html(path.read_text(errors='replace')))
    if not tables:  # only the CSV tables: shown as they are
        for path in (out_dir / 'results.csv', out_dir / 'fold_table.csv'):
            if path.is_file():
                with open(path, newline='') as f:
                    rows = [r for r in csv.reader(f) if r]
                lines = ['| ' + ' | '.join(r) + ' |' for r in rows]
                if lines:
                    lines.insert(1, '|' + '---|' * len(rows[0]))
                parts.append(f'<p class="src">{_e(path.name)}</p>' + markdown_html('\n'.join(lines)))
    for path in charts:
        data = path.read_bytes()
        if not data.startswith(b'\x89PNG'):
            raise MedSegError(path, 'not a PNG file')
        parts.append(f'<figure>{_img(data, path.stem)}<figcaption>{_e(path.name)}</figcaption></figure>')
    runs = sorted(out_dir.glob('*/test*/out/volumes/metrics.csv')) + sorted(out_dir.glob('*/test*/volumes/metrics.csv'))
    if runs:
        items = []
        for csv_path in runs:
            folder = csv_path.parents[1]
            rel = folder.relative_to(out_dir).as_posix()
            link = (f' (<a href="{_e(rel)}/{REPORT_NAME}">report</a>)' if (folder / REPORT_NAME).is_file()
                    else f' — <code>python tools/report.py {_e(folder)}</code>')
            items.append(f'<li><code>{_e(rel)}</code>{link}</li>')
        parts.append('<p>Per-case results of the runs:</p><ul>' + ''.join(items) + '</ul>')
    return '\n'.join(parts)


# ---- the page --------------------------------------------------------------------------------------------------
def build_report(out_dir: PathLike, info: Optional[RunInfo] = None, **options) -> str:
    """The report page of ``out_dir`` as HTML text (see the module docstring); ``options`` as
    :func:`find_run_info`."""
    from .version import __version__

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise MedSegError(out_dir, 'not a folder (expected a mim test --out folder or a benchmark work dir)')
    info = info or find_run_info(out_dir, **options)
    csv_path = out_dir / METRICS_CSV
    has_cases = csv_path.is_file()
    if not has_cases and not any((out_dir / n).is_file() for n in
                                 (*BENCHMARK_TABLES, 'results.csv', 'fold_table.csv')):
        raise MedSegError(csv_path, 'no per-case metrics and no benchmark results (results.md / fold_table.md) in '
                                    f'{out_dir}: run mim test with --out {out_dir}, then tools/report.py again')
    sections, warnings, names, n_cases, stems = [], [], {}, None, set()
    if has_cases:
        table = read_case_table(csv_path)
        if not info.data_root:
            where = info.sources.get('data_root_missing')
            raise MedSegError(out_dir, 'cannot find the prepared dataset of this run'
                                       + (f" (the config's data_root {where!r} has no manifest.csv from here)"
                                          if where else f' (no {RUN_INFO_NAME}, log or config found)')
                                       + '; pass --work-dir (the mim test --work-dir) or --data PREPARED')
        root = Path(info.data_root)
        if not (root / 'manifest.csv').is_file():
            raise MedSegError(root, 'no manifest.csv: not a dataset prepared by tools/prepare_dataset.py')
        class_names = dataset_classes(root)
        bad = [c for c in table.label_classes if not 0 <= c < len(class_names)]
        if bad:
            raise MedSegError(csv_path, f'class indices {bad} not in {root / "dataset.json"} classes {class_names}')
        names = {c: class_names[c] if isinstance(c, int) else c for c in table.classes}
        n_cases = len(table.cases)
        expected = split_list_cases(root, info.split_file)
        if expected is not None:
            lacking, extra = sorted(set(expected) - set(table.cases)), sorted(set(table.cases) - set(expected))
            if lacking:
                warnings.append(f'{len(lacking)} case(s) of the test split {info.split_file} have no row in '
                                f'metrics.csv: {", ".join(lacking[:10])}')
            if extra:
                warnings.append(f'{len(extra)} case(s) of metrics.csv are not in the test split {info.split_file}: '
                                f'{", ".join(extra[:10])}')
        from .manifest import read_manifest
        stems = {r.stem for r in read_manifest(root)}
        sections.append(_case_sections(table, root, out_dir, names))
    bench = _benchmark_section(out_dir, stems)
    if bench:
        sections.insert(0, bench)
    title = f'Test report: {out_dir.resolve().name}'
    when = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
    nav = ' · '.join(f'<a href="#{a}">{t}</a>' for a, t, present in (
        ('benchmark', 'benchmark', bench is not None), ('per-case', 'per case', has_cases),
        ('distribution', 'distribution', has_cases), ('overlays', 'best / median / worst', has_cases),
        ('disagreement', 'disagreement', has_cases)) if present)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n'
            f'<h1>{_e(title)}</h1><p class="src">written {when} by mmseg_medical {__version__} '
            f'(tools/report.py) · {nav}</p>\n'
            '<h2 id="run">Run</h2>\n' + _run_section(info, out_dir, names, n_cases, warnings) + '\n'
            + '\n'.join(sections) + f'\n<script>{_JS}</script>\n</body></html>\n')


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_report(out_dir: PathLike, info: Optional[RunInfo] = None, **options) -> Path:
    """Build and write ``out_dir/report.html`` (atomically); returns its path."""
    text = build_report(out_dir, info, **options)
    return write_text_atomic(Path(out_dir) / REPORT_NAME, text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='report.py', description='Write DIR/report.html: one self-contained page with the run, the per-case '
                                      'table (sortable), metric distributions, overlays of the best, median and '
                                      'worst cases, and a benchmark comparison.')
    parser.add_argument('dir', type=Path, help='a mim test --out folder (volumes/metrics.csv) or a benchmark work dir')
    parser.add_argument('--data', type=Path, default=None,
                        help="the prepared dataset tested (default: from DIR/run.json or the run's config)")
    parser.add_argument('--config', default=None, help='the config tested (default: from the run)')
    parser.add_argument('--checkpoint', default=None,
                        help="the checkpoint tested (default: from the run); alone, its training config gives the "
                             'prepared dataset and the protocol')
    parser.add_argument('--protocol', default=None, help='the evaluation protocol (default: from the run log)')
    parser.add_argument('--work-dir', type=Path, default=None,
                        help='the mim test --work-dir, when it is neither DIR nor its parent (its log and config)')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point: 0 written, 1 bad input (one line on stderr), 2 bad option."""
    args = build_parser().parse_args(argv)
    try:
        path = write_report(args.dir, config=args.config, checkpoint=args.checkpoint, data=args.data,
                            protocol=args.protocol, work_dir=args.work_dir)
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(path)
    return 0
