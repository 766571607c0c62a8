"""Slice-level benchmark runner: train + test each config with mim, collect slice and volume metrics.

``python tools/benchmark.py --configs 'configs/cranium/*.py' --work-dir work_dirs/bench [--cfg-options ...]``
or ``--preset cranium-lr`` / ``--preset cranium-heads``; ``--preset covid19-task1`` runs one config on the
five official COVID-19-CT-Seg Task 1 folds and writes ``fold_table.{md,csv,png}`` next to the published row.
Runs are sequential and resumable. A run is keyed on the config file name *and* the ``--cfg-options``: it lives in ``<work-dir>/<config stem>-<key>/`` (``key`` =
8 hex digits of the SHA-1 of both, written out in ``run_key.json``), so the same config with other
overrides is a new run. A run whose ``result.json`` exists is skipped, and a finished training
(``train.done``) is not repeated. Writes
``results.md`` (Method, Backbone, Crop Size, lr, mIoU, mDice, volume Dice/NSD/HD95), ``results.csv`` and
one bar chart per metric (``<metric>.png``).
"""
from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run

REPO = Path(__file__).resolve().parents[2]
PRESETS: Dict[str, List[str]] = {
    'cranium-lr': [f'configs/cranium/fcn-unet-s5-d16_unet_1xb16-{lr}-20k_cranium-512x512.py'
                   for lr in ('0.01', '0.001', '0.0001')],
    'cranium-heads': [f'configs/cranium/{head}-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
                      for head in ('fcn', 'pspnet', 'deeplabv3')],
}


@dataclass(frozen=True)
class FoldPreset:
    """One config run on each official fold (its split lists chosen by ``--cfg-options``), compared with a
    published row: ``reference`` = {class: {metric: value in %}} for metrics ``dice`` and ``nsd``."""

    config: str
    folds: int
    train_list: str  # split list names with {k}
    test_list: str
    reference_name: str
    reference: Dict[str, Dict[str, float]]

    def fold_options(self, k: int) -> List[str]:
        train, test = self.train_list.format(k=k), self.test_list.format(k=k)
        return [f'train_dataloader.dataset.ann_file=splits/{train}.txt',
                f'val_dataloader.dataset.ann_file=splits/{test}.txt',
                f'test_dataloader.dataset.ann_file=splits/{test}.txt']


FOLD_PRESETS: Dict[str, FoldPreset] = {
    # COVID-19-CT-Seg Task 1: train on 4 cases, test on 16, five official folds; 2D U-Net row as published.
    'covid19-task1': FoldPreset(
        'configs/covid19/fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py', 5,
        'task1_fold{k}_train', 'task1_fold{k}_test', '2D U-Net (published, Task 1 mean)',
        {'left_lung': {'dice': 95.1, 'nsd': 84.6}, 'right_lung': {'dice': 95.6, 'nsd': 85.5},
         'infection': {'dice': 60.9, 'nsd': 61.5}}),
}
FOLD_METRICS = (('dice', 'DSC'), ('nsd', 'NSD'))
#: (column title, key in the test metrics, digits)
COLUMNS = [('mIoU', 'mIoU', 2), ('mDice', 'mDice', 2), ('vol. Dice', 'volume/mDice', 2),
           ('vol. NSD', 'volume/mNSD', 2), ('vol. HD95 (mm)', 'volume/mHD95', 2)]


def resolve_configs(patterns: Sequence[str]) -> List[Path]:
    """Expand globs (relative to the cwd, then the repo), keep order, drop duplicates and ``_base_``."""
    found: List[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or sorted(glob.glob(str(REPO / pattern)))
        if not matches:
            raise FileNotFoundError(f'{pattern}: no config matches')
        for m in matches:
            path = Path(m).resolve()
            if '_base_' not in path.parts and path not in found:
                found.append(path)
    return found


def describe(config: Path, cfg_options: Sequence[str]) -> dict:
    """Method, backbone, crop size and lr of a config after the overrides."""
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(str(config))
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    size = cfg.model.get('data_preprocessor', {}).get('size') or cfg.get('img_scale') or cfg.get('crop_size')
    head = cfg.model.decode_head
    head = head[0] if isinstance(head, (list, tuple)) else head
    return {'config': config.name, 'method': config.stem.split('_')[0],
            'backbone': str(cfg.model.backbone.type).lower(), 'head': head.type,
            'crop_size': 'x'.join(str(s) for s in size) if size else '',
            'lr': cfg.optim_wrapper.optimizer.lr}


def run_key(config: Path, cfg_options: Sequence[str]) -> dict:
    """What identifies a run: the config file name and the overrides in the order given."""
    return {'config': config.name, 'cfg_options': [str(o) for o in cfg_options]}


def run_dir_for(work_dir: Path, config: Path, cfg_options: Sequence[str]) -> Path:
    """``<work_dir>/<config stem>-<8 hex digits of the SHA-1 of run_key>``."""
    text = json.dumps(run_key(config, cfg_options), sort_keys=True)
    return work_dir / f'{config.stem}-{hashlib.sha1(text.encode()).hexdigest()[:8]}'


def run_one(config: Path, work_dir: Path, cfg_options: Sequence[str], gpus: int) -> dict:
    """Train (unless done) and test one config with ``cfg_options``; returns and stores ``result.json``."""
    run_dir = run_dir_for(work_dir, config, cfg_options)
    key = run_key(config, cfg_options)
    key_path = run_dir / 'run_key.json'
    if key_path.is_file() and json.loads(key_path.read_text()) != key:
        raise RuntimeError(f'{run_dir} belongs to another run ({key_path}); remove it or use another --work-dir')
    result_path = run_dir / 'result.json'
    if result_path.is_file():
        print(f'skip {config.name}: {result_path} exists (same config and --cfg-options)')
        return json.loads(result_path.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    key_path.write_text(json.dumps(key, indent=1) + '\n')
    info = describe(config, cfg_options)
    train_dir, test_dir = run_dir / 'train', run_dir / 'test'
    start = time.perf_counter()
    if not (run_dir / 'train.done').is_file():
        print(f'train {config.name} (log: {train_dir / "mim_train.log"})')
        run(mim_train(config, train_dir, cfg_options, ['--gpus', str(gpus)]), log=train_dir / 'mim_train.log', cwd=REPO)
        (run_dir / 'train.done').write_text(str(last_checkpoint(train_dir)))
    checkpoint = Path((run_dir / 'train.done').read_text().strip())
    print(f'test  {config.name}')
    run(mim_test(config, checkpoint, test_dir, cfg_options, ['--gpus', str(gpus)]), log=test_dir / 'mim_test.log', cwd=REPO)
    result = {**info, 'checkpoint': str(checkpoint), 'metrics': read_test_metrics(test_dir),
              'seconds': round(time.perf_counter() - start, 1)}
    tmp = result_path.with_suffix('.tmp')
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(result_path)
    return result


def _cell(metrics: dict, key: str, digits: int) -> str:
    value = metrics.get(key)
    return '–' if value is None else f'{value:.{digits}f}'


def write_results(results: Sequence[dict], work_dir: Path) -> List[Path]:
    """``results.md``, ``results.csv`` and one bar chart per metric; returns the written paths."""
    head = ['Method', 'Backbone', 'Crop Size', 'lr'] + [c[0] for c in COLUMNS] + ['config']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * 4 + '---:|' * len(COLUMNS) + '---|']
    for r in results:
        cells = [r['method'], r['backbone'], r['crop_size'], f"{r['lr']:g}"]
        cells += [_cell(r['metrics'], key, d) for _, key, d in COLUMNS] + [f"`{r['config']}`"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    note = ('\nmIoU/mDice: mmseg IoUMetric, pixels pooled over all test slices. vol.: per-case 3D metrics '
            '(VolumeMetric) averaged over cases and foreground classes; HD95 in mm.\n')
    md = work_dir / 'results.md'
    md.write_text('\n'.join(lines) + '\n' + note)
    out = work_dir / 'results.csv'
    with open(out, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['config', 'method', 'backbone', 'crop_size', 'lr'] + [k for _, k, _ in COLUMNS] + ['seconds'])
        for r in results:
            writer.writerow([r['config'], r['method'], r['backbone'], r['crop_size'], r['lr']]
                            + [r['metrics'].get(k, '') for _, k, _ in COLUMNS] + [r.get('seconds', '')])
    return [md, out] + plot_results(results, work_dir)


def plot_results(results: Sequence[dict], work_dir: Path) -> List[Path]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = [f"{r['method']}  (lr {r['lr']:g})" for r in results]
    paths = []
    for title, key, _ in COLUMNS:
        values = [r['metrics'].get(key) for r in results]
        if all(v is None for v in values):
            continue
        # Horizontal bars, first config on top: long config names stay readable.
        fig, ax = plt.subplots(figsize=(8, 1.0 + 0.45 * len(results)))
        bars = ax.barh(labels[::-1], [v if v is not None else 0 for v in values][::-1], color='#1f77b4')
        ax.bar_label(bars, fmt='%.2f', padding=3)
        ax.margins(x=0.15)
        ax.set_title(title + (' (lower is better)' if 'HD95' in title else ''))
        fig.tight_layout()
        path = work_dir / (key.replace('/', '_') + '.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


#: VolumeMetric's returned keys read per fold: metric → (mean key, std key), ``{}`` = the class name.
FOLD_KEYS = {'dice': ('volume/Dice.{}', 'volume/Dice_std.{}'), 'nsd': ('volume/NSD.{}', 'volume/NSD_std.{}')}


def fold_summary(metrics: Dict[str, float], classes: Sequence[str],
                 source: Path) -> Dict[str, Dict[str, Tuple[float, float]]]:
    """{class: {metric: (mean, std)}} in % from one run's test metrics (``read_test_metrics``): VolumeMetric's
    ``volume/Dice.<class>``, ``volume/Dice_std.<class>``, ``volume/NSD.<class>``, ``volume/NSD_std.<class>``
    (mean and sample std over the test cases). A missing key is a ``RuntimeError`` naming ``source``."""
    summary: Dict[str, Dict[str, Tuple[float, float]]] = {}
    for c in classes:
        summary[c] = {}
        for metric, keys in FOLD_KEYS.items():
            values = [metrics.get(k.format(c)) for k in keys]
            missing = [k.format(c) for k, v in zip(keys, values) if not isinstance(v, (int, float))]
            if missing:
                raise RuntimeError(f'{source}: no {", ".join(missing)} in the test metrics (is VolumeMetric in '
                                   'the test_evaluator? a run tested before VolumeMetric returned stds: delete '
                                   'its result.json to test it again)')
            summary[c][metric] = (float(values[0]), float(values[1]))
    return summary


def write_fold_table(preset: FoldPreset, summaries: Sequence[Dict[str, Dict[str, Tuple[float, float]]]],
                     work_dir: Path) -> List[Path]:
    """``fold_table.md`` / ``.csv`` / ``.png`` in the benchmark's layout: per class DSC and NSD mean ± std over
    each fold's test cases, the mean over folds (± std of the fold means) and the published row."""
    import numpy as np

    classes = list(preset.reference)
    cols = [(c, m, t) for c in classes for m, t in FOLD_METRICS]
    head = ['fold'] + [f'{c} {t}' for c, _, t in cols]
    md = ['| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * len(cols)]
    rows = [['fold', 'class', 'metric', 'mean', 'std']]
    for k, summary in enumerate(summaries):
        md.append(f'| {k} | ' + ' | '.join('{:.1f} ± {:.1f}'.format(*summary[c][m]) for c, m, _ in cols) + ' |')
        rows += [[k, c, t, round(summary[c][m][0], 4), round(summary[c][m][1], 4)] for c, m, t in cols]
    means = {(c, m): [s[c][m][0] for s in summaries] for c, m, _ in cols}
    spread = {key: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for key, v in means.items()}
    md.append('| **mean** | ' + ' | '.join(f'**{np.mean(means[c, m]):.1f}** ± {spread[c, m]:.1f}' for c, m, _ in cols)
              + ' |')
    md.append(f'| {preset.reference_name} | ' + ' | '.join(f'{preset.reference[c][m]:.1f}' for c, m, _ in cols) + ' |')
    rows += [['mean', c, t, round(float(np.mean(means[c, m])), 4), ''] for c, m, t in cols]
    rows += [[preset.reference_name, c, t, preset.reference[c][m], ''] for c, m, t in cols]
    note = (f'\nPer fold: mean ± std over its test cases (VolumeMetric, per case in 3D, NSD tolerance as in the '
            f'config); mean: over the {len(summaries)} folds ± std of the fold means. `{Path(preset.config).name}`\n')
    paths = [work_dir / 'fold_table.md', work_dir / 'fold_table.csv', work_dir / 'fold_table.png']
    paths[0].write_text('\n'.join(md) + '\n' + note)
    with open(paths[1], 'w', newline='') as f:
        csv.writer(f).writerows(rows)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(cols), 3.6))
    x = np.arange(len(cols))
    ax.bar(x - 0.2, [np.mean(means[c, m]) for c, m, _ in cols], 0.4, label='this run (mean over folds)',
           yerr=[spread[c, m] for c, m, _ in cols], capsize=3)
    ax.bar(x + 0.2, [preset.reference[c][m] for c, m, _ in cols], 0.4, label=preset.reference_name)
    ax.set_xticks(x, [f'{c}\n{t}' for c, _, t in cols], fontsize=8)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths


def run_fold_preset(preset: FoldPreset, work_dir: Path, cfg_options: Sequence[str], gpus: int) -> List[Path]:
    """Train and test ``preset.config`` on every fold (resumable like any run), then write the fold table."""
    config = resolve_configs([preset.config])[0]
    summaries = []
    for k in range(preset.folds):
        options = [*cfg_options, *preset.fold_options(k)]
        result = run_one(config, work_dir, options, gpus)
        summaries.append(fold_summary(result['metrics'], list(preset.reference),
                                      run_dir_for(work_dir, config, options) / 'result.json'))
    return write_fold_table(preset, summaries, work_dir)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='benchmark.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--configs', nargs='+', help='config files or globs')
    group.add_argument('--preset', choices=sorted(PRESETS) + sorted(FOLD_PRESETS),
                       help='a shipped list of configs, or a config on every official fold (covid19-task1)')
    parser.add_argument('--work-dir', type=Path, required=True)
    parser.add_argument('--cfg-options', nargs='+', default=[], help='key=value overrides for every run')
    parser.add_argument('--gpus', type=int, default=None, help='GPUs per run (default: 1 if CUDA else 0)')
    args = parser.parse_args(argv)
    fold_preset = FOLD_PRESETS.get(args.preset)
    if fold_preset is None:
        try:
            configs = resolve_configs(args.configs or PRESETS[args.preset])
        except FileNotFoundError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 1
    if args.gpus is None:
        import torch
        args.gpus = 1 if torch.cuda.is_available() else 0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if fold_preset is not None:
        try:
            paths = run_fold_preset(fold_preset, args.work_dir, args.cfg_options, args.gpus)
        except RuntimeError as exc:
            print(f'error: {args.preset}: {exc}', file=sys.stderr)
            return 1
        for path in paths:
            print(f'wrote {path}')
        print(paths[0].read_text())
        return 0
    results = []
    for config in configs:
        try:
            results.append(run_one(config, args.work_dir, args.cfg_options, args.gpus))
        except RuntimeError as exc:
            print(f'error: {config}: {exc}', file=sys.stderr)
            return 1
    for path in write_results(results, args.work_dir):
        print(f'wrote {path}')
    print((args.work_dir / 'results.md').read_text())
    return 0
