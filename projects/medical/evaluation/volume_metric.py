"""``VolumeMetric``: score slice predictions as whole volumes (per case, in mm) during ``mim test`` / val.

mmseg's ``IoUMetric`` pools pixels over all slices and averages background in; the medical benchmarks
score each case's 3D volume. This metric maps every predicted slice back to its case through
``manifest.csv`` (found next to the ``images/`` folder of the slice, or given as ``data_root``),
restacks the cases in slice order with their geometry from ``cases/<case>.json``, maps each prediction back
to the source scan's voxel grid and scores it against the case's source label (``labels/<case>.nii.gz``,
kept by ``tools/prepare_dataset.py``), so a crop or resampling at prepare time loses no labelled voxel from
the score. Metrics, spacing, empty-structure rules and aggregation are those of the evaluation protocol
(:mod:`.protocols`), optionally after nnU-Net-style connected-component post-processing (:mod:`.postprocess`).
Datasets prepared before ``labels/`` existed are scored on the slice grid (with a warning).
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

from ..errors import MedSegError
from ..manifest import (MANIFEST_NAME, SliceRecord, find_dataset_root, read_case_geometry, read_manifest,
                        read_source_label, restack, source_label_path)
from ..restacking import to_source_grid
from ..volume import save_nifti
from .cli import _write_atomic, rows_to_csv
from .metrics import case_metrics
from .postprocess import (DEFAULT_CANDIDATES, active_rules, check_rule, choose_min_sizes, describe_rules, load_rules,
                          remove_small_components, save_rules)
from .protocols import METRIC_KEYS, METRIC_UNITS, get_protocol
from .summary import format_site_markdown, format_summary_markdown, summarize, summarize_by_site
from .surface import EMPTY_CATEGORIES

Tolerance = Union[float, Mapping[int, float]]
#: File written next to the volumes (``output_dir``) when post-processing is on: the rules, for inference.
POSTPROCESS_FILE = 'postprocessing.json'
#: Per-case rows written to ``output_dir`` (the columns of ``tools/evaluate_volumes.py``'s CSV).
METRICS_CSV = 'metrics.csv'


def _encode(mask: np.ndarray) -> bytes:
    """Masks are kept PNG-compressed between ``process`` and ``compute_metrics`` (a few kB a slice)."""
    return cv2.imencode('.png', mask.astype(np.uint8))[1].tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@METRICS.register_module()
class VolumeMetric(BaseMetric):
    """Per-case 3D Dice / IoU / NSD / HD95 / ASSD from 2D slice predictions.

    Args:
        data_root: dataset root holding ``manifest.csv`` and ``cases/`` (default: found from the slices).
        classes: class indices to score (default: every class but background 0).
        nsd_tolerance: NSD tolerance in mm, one value or ``{class: mm}``; default: the protocol's (per class
            name: ``covid19`` 1 mm lungs, 3 mm infection; others 1 mm).
        n_bootstrap: resamples for the 95% CI of each mean logged in the table (0: no CI).
        postprocess: connected-component post-processing of the restacked predictions before scoring
            (3D components, :mod:`.postprocess`): ``None`` (off); a ``postprocessing.json`` path (rules
            chosen on another set, e.g. validation); ``dict(min_size={1: 20})`` removes class-1
            components under 20 voxels (``'largest'`` keeps only the largest); ``'auto'`` or
            ``dict(candidates=[...])`` chooses per class, on the evaluated cases, the rule that raises the
            mean Dice the most (none if no rule does; nnU-Net's ``determine_postprocessing``) and logs it.
            Optional ``connectivity`` (1: faces, 3: also edges and corners). Choosing on the cases being
            scored is optimistic: choose on validation, then pass the fixed ``min_size`` for the test set.
        protocol: a registered evaluation protocol (:mod:`mmseg_medical.evaluation.protocols`): ``'default'``,
            ``'hemseg'``, ``'hemseg-paper'``, ``'crossmoda'``, ``'covid19'``: which metrics, how each is
            defined, the spacing and grid, empty structures, tolerances, aggregation (median [IQR] and a
            per-site breakdown for ``crossmoda``). The log table names the protocol.
        output_dir: if set, write each restacked (post-processed) prediction as ``<case>.nii.gz`` with the
            source affine, the per-case rows as ``metrics.csv`` (``case,class,dice,iou,nsd,hd95,assd,empty``
            as ``tools/evaluate_volumes.py``: class index, fractions and mm at full precision) and the
            post-processing rules as ``postprocessing.json`` for inference.
        collect_device, prefix: as in :class:`mmengine.evaluator.BaseMetric` (keys are ``volume/…``).

    Returned keys, for each metric of the protocol (``Dice``, ``IoU``, ``NSD``, ``HD95``, ``ASSD``; ``HD95vox``
    in voxels for ``hemseg-paper``): ``m<Metric>`` (mean over cases and the scored classes; Dice/IoU/NSD in %,
    distances in mm or voxels), per class ``<Metric>.<class>`` and the sample standard deviation over cases
    (ddof=1, 0 for one case; same units) ``<Metric>_std.<class>``; with a CI ``<Metric>.<class>.ci_low`` /
    ``.ci_high``; for median protocols ``<Metric>_median.<class>``, ``<Metric>_q1.<class>``,
    ``<Metric>_q3.<class>``; per site ``<Metric>.<class>.<site>`` (mean); the same per-class keys for a union
    of classes the protocol scores (``crossmoda`` on crossMoDA 2023 classes: ``Dice.vs``, ...; not in the
    ``m<Metric>`` means, which stay over the classes); and
    the empty-mask counts behind those means: ``n_both_empty``, ``n_gt_empty``, ``n_pred_empty`` (cases x
    classes) and per class ``n_<category>.<class>``. The empty-mask policy of
    :mod:`mmseg_medical.evaluation.surface` applies (no case is dropped); a case without recorded spacing
    is scored with 1 mm voxels and a warning. All values are Python floats, rounded to 4 decimals.
    ``self.postprocess_rules`` holds the rules last applied.
    """

    default_prefix: Optional[str] = 'volume'

    def __init__(self, data_root: Optional[str] = None, classes: Optional[Sequence[int]] = None,
                 nsd_tolerance: Optional[Tolerance] = None, n_bootstrap: int = 5000,
                 postprocess: Union[None, str, Mapping] = None, output_dir: Optional[str] = None,
                 protocol: str = 'default', collect_device: str = 'cpu', prefix: Optional[str] = None, **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.data_root = data_root
        self.classes = None if classes is None else [int(c) for c in classes]
        self.nsd_tolerance = {int(k): float(v) for k, v in nsd_tolerance.items()} \
            if isinstance(nsd_tolerance, Mapping) else None if nsd_tolerance is None else float(nsd_tolerance)
        if n_bootstrap < 0:
            raise MedSegError(None, f'VolumeMetric: n_bootstrap must be >= 0 (0: no CI), got {n_bootstrap}')
        self.n_bootstrap = int(n_bootstrap)
        self.postprocess = self._check_postprocess(postprocess)
        self.postprocess_rules: Dict[int, object] = {}
        self.output_dir = output_dir
        self.protocol = get_protocol(protocol).name
        #: Facts of the run set by :class:`~mmseg_medical.report_hook.RunInfoHook` (config, checkpoint, split
        #: file, work dir, log: absolute paths), written with the metrics as ``<output_dir>/../run.json``.
        self.run_facts: Dict[str, Optional[str]] = {}
        self._index: Dict[Path, Dict[str, SliceRecord]] = {}

    @staticmethod
    def _check_postprocess(postprocess: Union[None, str, Mapping]) -> Optional[dict]:
        """Normalise the option to ``None`` or ``{'min_size' | 'candidates': ..., 'connectivity': c}``."""
        if postprocess is None:
            return None
        if postprocess == 'auto':
            return {'candidates': list(DEFAULT_CANDIDATES), 'connectivity': 1}
        if isinstance(postprocess, Path) or (isinstance(postprocess, str) and postprocess.endswith('.json')):
            # rules chosen earlier (a postprocessing.json written with --out)
            rules, connectivity = load_rules(postprocess)
            return {'min_size': rules, 'connectivity': connectivity}
        if not isinstance(postprocess, Mapping) or set(postprocess) - {'min_size', 'candidates', 'connectivity'} \
                or ('min_size' in postprocess) == ('candidates' in postprocess):
            raise MedSegError(None, "VolumeMetric: postprocess must be None, 'auto', dict(min_size={class: voxels "
                                    f"or 'largest'}}) or dict(candidates=[...]), got {postprocess!r}")
        out = {'connectivity': int(postprocess.get('connectivity', 1))}
        if 'min_size' in postprocess:
            out['min_size'] = {int(c): check_rule(int(c), r) for c, r in postprocess['min_size'].items()}
        else:
            out['candidates'] = [check_rule(0, r) for r in postprocess['candidates']]
        return out

    # ---- per batch ---------------------------------------------------------------------------------
    def _lookup(self, img_path: str) -> Tuple[Path, SliceRecord]:
        root = Path(self.data_root).resolve() if self.data_root else find_dataset_root(img_path)
        if root not in self._index:
            self._index[root] = {Path(r.image).stem: r for r in read_manifest(root)}
        record = self._index[root].get(Path(img_path).stem)
        if record is None:
            raise MedSegError(img_path, f'slice not listed in {root / MANIFEST_NAME}')
        return root, record

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            root, record = self._lookup(sample['img_path'])
            pred = sample['pred_sem_seg']['data'].squeeze().cpu().numpy()
            gt = sample['gt_sem_seg']['data'].squeeze().cpu().numpy()
            self.results.append((str(root), record.case_id, record.slice_index, _encode(pred), _encode(gt)))

    # ---- once -------------------------------------------------------------------------------------
    def compute_metrics(self, results: list) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        names = list(self.dataset_meta.get('classes', [])) if self.dataset_meta else []
        classes = self.classes or list(range(1, len(names))) or [1]
        cases: Dict[Tuple[str, str], dict] = defaultdict(dict)
        for root, case_id, index, pred, gt in results:
            cases[(root, case_id)][index] = (pred, gt)
        volumes = []
        geometries: Dict[str, dict] = {}
        for (root, case_id), slices in sorted(cases.items()):
            geometry = read_case_geometry(root, case_id)
            expected = geometry['shape_zhw'][0]
            if len(slices) != expected:
                print_log(f'VolumeMetric: case {case_id} has {len(slices)} of {expected} slices; '
                          'the missing ones count as background', logger, level=30)
            pred = restack({k: _decode(p) for k, (p, _) in slices.items()}, geometry)
            gt = restack({k: _decode(g) for k, (_, g) in slices.items()}, geometry)
            spacing = geometry.get('spacing')
            if spacing is None:
                print_log(f'VolumeMetric: case {case_id} has no spacing; distances are in voxels', logger, level=30)
                spacing = (1.0, 1.0, 1.0)
            volumes.append((case_id, gt, pred, spacing))
            geometries[case_id] = dict(geometry, _root=root)
        self._postprocess(volumes, classes, logger)
        protocol = get_protocol(self.protocol)
        label_names = {c: names[c] for c in classes if c < len(names)}
        rows: List[dict] = []
        slice_grid: List[str] = []
        for case_id, gt, pred, spacing in volumes:
            geometry = geometries[case_id]
            on_source = to_source_grid(pred.array, geometry)
            gt_array, pred_array, zooms, affine = self._scoring_grid(geometry, case_id, on_source)
            if gt_array is None:
                slice_grid.append(case_id)
                gt_array, pred_array, zooms, affine = gt.nifti_array(), pred.nifti_array(), tuple(spacing), \
                    geometry.get('affine')
            scored = case_metrics(gt_array, pred_array, zooms, classes, self.nsd_tolerance, protocol.name,
                                  label_names, None if affine is None else np.asarray(affine))
            rows.extend({'case': case_id, **row} for row in scored)
            if self.output_dir:  # on the source scan's own voxel grid and affine
                save_nifti(on_source, Path(self.output_dir) / f'{case_id}.nii.gz', np.uint8)
        if slice_grid:
            spatial = [c for c in slice_grid if geometries[c].get('spatial')]
            print_log(f'VolumeMetric: {len(slice_grid)} case(s) have no source label (labels/<case>.nii.gz: '
                      'prepared by an older version), scored on the prepared slice grid'
                      + (f'; {len(spatial)} of them were resampled/cropped at prepare time, so labelled voxels '
                         'outside the crop are not counted: prepare again to score on the source grid'
                         if spatial else ''), logger, level=30)
        if self.output_dir:
            out_dir = Path(self.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(out_dir / METRICS_CSV, rows_to_csv(rows, protocol.metrics))
            if protocol.name == 'nnunet':  # nnU-Net's summary.json beside metrics.csv
                from .protocols.nnunet import summary_json
                files = {c: (str(source_label_path(g['_root'], c)), str(out_dir / f'{c}.nii.gz'))
                         for c, g in geometries.items()}
                _write_atomic(out_dir / 'summary.json', json.dumps(summary_json(rows, files), indent=4,
                                                                   sort_keys=True) + '\n')
            if out_dir.name == 'volumes':  # mim test --out DIR: DIR/volumes, the report's DIR
                self._write_run_info(sorted({g['_root'] for g in geometries.values()}))
        voxel_units = any(g.get('spacing') is None for g in geometries.values())
        return self._summarise(rows, names, classes, logger, voxel_units)

    def _write_run_info(self, roots: List[str]) -> None:
        """``run.json`` beside ``volumes/`` (the ``--out`` folder): what ``tools/report.py DIR`` reads back, every
        path absolute so that it works from any folder."""
        import json

        from ..report import RUN_INFO_NAME
        root = roots[0] if len(roots) == 1 else (str(Path(self.data_root).resolve()) if self.data_root else None)
        info = {'config': None, 'checkpoint': None, 'protocol': self.protocol, 'data_root': root,
                'split_file': None, 'work_dir': None, 'log': None}
        info.update({k: v for k, v in self.run_facts.items() if k in info and v})
        _write_atomic(Path(self.output_dir).parent / RUN_INFO_NAME, json.dumps(info, indent=1) + '\n')

    def source_classes(self, labels: np.ndarray, root: str, case_id: str) -> np.ndarray:
        """The classes the model predicts, from a case's stored source label (``labels/<case>.nii.gz``).

        Identity here: the stored classes are the model's. A dataset whose folders store other codes (e.g.
        COVID-19-CT-Seg's one label store read as each subtask) overrides this with its label map."""
        return labels

    def _scoring_grid(self, geometry: dict, case_id: str, on_source):
        """Ground truth, prediction, zooms and affine on the source scan's grid (NIfTI ``i, j, k`` order), or
        ``(None,) * 4`` when the dataset kept no source label for the case."""
        source = read_source_label(geometry['_root'], case_id)
        if source is None:
            return None, None, None, None
        if source.array.shape != on_source.array.shape:
            raise MedSegError(f'{geometry["_root"]}/labels/{case_id}.nii.gz',
                              f'source label shape {source.array.shape} (z, h, w) differs from the restacked '
                              f'prediction mapped to the source grid {on_source.array.shape}')
        zooms = source.spacing if source.spacing is not None else (1.0, 1.0, 1.0)
        if geometry.get('spacing') is None:   # no recorded geometry: the slice grid's unit voxels
            zooms = (1.0, 1.0, 1.0)
        gt_array = self.source_classes(source.array.transpose(2, 1, 0), geometry['_root'], case_id)
        return gt_array, on_source.array.transpose(2, 1, 0), tuple(zooms), source.affine

    def _postprocess(self, volumes: list, classes: List[int], logger) -> None:
        """Choose (``'auto'``) and apply the post-processing rules to the predictions in place."""
        self.postprocess_rules = {}
        if self.postprocess is None:
            return
        connectivity = self.postprocess['connectivity']
        if 'min_size' in self.postprocess:
            rules = dict(self.postprocess['min_size'])
            how = 'given'
        else:
            pairs = [(gt.array, pred.array) for _, gt, pred, _ in volumes]
            rules = choose_min_sizes(pairs, classes, self.postprocess['candidates'], connectivity)
            how = f'chosen on these {len(volumes)} cases (mean Dice; none where no rule improves it)'
        self.postprocess_rules = rules
        print_log(f'VolumeMetric post-processing ({how}): {describe_rules(rules)}', logger)
        active = active_rules(rules)
        for i, (case_id, gt, pred, spacing) in enumerate(volumes):
            volumes[i] = (case_id, gt, replace(pred, array=remove_small_components(pred.array, active, connectivity)),
                          spacing)
        if self.output_dir:
            save_rules(Path(self.output_dir) / POSTPROCESS_FILE, rules, connectivity, how=how)

    def _summarise(self, rows: List[dict], names: List[str], classes: List[int], logger,
                   voxel_units: bool = False) -> Dict[str, float]:
        protocol = get_protocol(self.protocol)
        summary = summarize(rows, n_bootstrap=self.n_bootstrap, seed=0, protocol=protocol)
        label = {c: names[c] if c < len(names) else str(c) for c in classes}
        unions = list(protocol.unions({c: names[c] for c in classes if c < len(names)}, classes))
        label.update({u: u for u in unions})
        table = format_summary_markdown(summary, label)
        n_cases = len({r['case'] for r in rows})
        units = ('distances and the NSD tolerance in VOXELS: some cases have no recorded spacing'
                 if voxel_units else ', '.join(f'{m} in {METRIC_UNITS[m]}' for m in protocol.metrics
                                                if METRIC_UNITS[m] != 'fraction') or 'no distances')
        by_site = summarize_by_site(rows, protocol)
        sites = ('\nper site:\n' + format_site_markdown(by_site, label)) if by_site else ''
        print_log(f'volume metrics over {n_cases} cases, protocol {protocol.name} (fractions; {units}):\n'
                  + table + sites, logger)
        out: Dict[str, float] = {}

        def scaled(metric: str, value) -> float:
            return round(float(value) * (100.0 if METRIC_UNITS[metric] == 'fraction' else 1.0), 4)

        for metric in protocol.metrics:
            out[f'm{METRIC_KEYS[metric]}'] = scaled(metric, np.nanmean([summary[c][metric]['mean'] for c in classes]))
        for c in [*classes, *unions]:    # the means above are over the classes; a union (vs) has its own keys
            for metric in protocol.metrics:  # mean and spread over the cases per class, same units
                key, s = METRIC_KEYS[metric], summary[c][metric]
                out[f'{key}.{label[c]}'] = scaled(metric, s['mean'])
                out[f'{key}_std.{label[c]}'] = scaled(metric, s['std'])
                if s['ci_low'] is not None:
                    for end in ('ci_low', 'ci_high'):
                        out[f'{key}.{label[c]}.{end}'] = scaled(metric, s[end])
                if protocol.median_iqr:
                    for stat in ('median', 'q1', 'q3'):
                        out[f'{key}_{stat}.{label[c]}'] = scaled(metric, s[stat])
                for site, site_summary in by_site.items():
                    if c in site_summary:
                        out[f'{key}.{label[c]}.{site}'] = scaled(metric, site_summary[c][metric]['mean'])
        for category in EMPTY_CATEGORIES:
            # floats: mmengine's JSON log dump writes non-float numbers (numpy ints) as null
            out[f'n_{category}'] = float(sum(summary[c]['empty'][category] for c in classes))
            for c in [*classes, *unions]:
                out[f'n_{category}.{label[c]}'] = float(summary[c]['empty'][category])
        return out
