#!/usr/bin/env python
"""CrossMoDA self-training: source-only (ceT1) model vs self-trained rounds, scored on labelled synthetic hrT2.

Writes a synthetic CrossMoDA release (``mmseg_medical.synthetic.crossmoda``; hrT2 hold-out labels written
beside it), prepares it (``prepare_dataset.py crossmoda``), then

* source:  ``mim train`` the source config on ``train`` (ceT1 only);
* round k: ``tools/pseudo_label.py`` labels the image-only ``target`` split (hrT2) with the previous model
  into ``target_pseudo{k}``, and ``mim train`` the pseudo config on ``train+target_pseudo{k}``
  starting from the previous checkpoint (``load_from``) for the same number of iterations;

and scores every model on the hold-out hrT2 scans (``target_validation``) with ``tools/infer_volume.py``
(predictions restacked onto the scans' grid) + Dice per structure against the hold-out labels (mean over
cases). Prints one row per model, the self-trained / source-only VS Dice ratio as the last line
(``ratio_vs_source=X.XX``) and the command line. CPU-sized defaults (64², 8 slices) finish in a few minutes.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import nibabel as nib
import numpy as np

from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.runs import last_checkpoint, mim_train, run, tiny_overrides
from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / 'configs/crossmoda/fcn-unet-s5-d16-ce-1.0-dice-3.0_unet_1xb16-0.01-20k_crossmoda-256x256.py'
STRUCTURES = {1: 'vestibular_schwannoma', 2: 'cochlea'}


def dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(truth.sum() + pred.sum())
    return 1.0 if total == 0 else 2.0 * float(np.sum(truth & pred)) / total


def score(config: Path, checkpoint: Path, options: Sequence[str], scans: Path, labels: Path, out: Path
          ) -> Dict[str, float]:
    """Mean Dice per structure of ``infer_volume.py``'s predictions of ``scans`` against ``labels``."""
    cmd = [sys.executable, str(REPO / 'tools/infer_volume.py'), str(config), str(checkpoint), '--input', str(scans),
           '--output', str(out), '--device', 'cpu', '--cfg-options', *options]
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    per_case: Dict[str, List[float]] = {name: [] for name in STRUCTURES.values()}
    preds = sorted(out.glob('*.nii.gz'))
    if not preds:
        raise RuntimeError(f'{out}: infer_volume.py wrote no predictions')
    for pred_file in preds:
        case = pred_file.name.split('.')[0]   # infer_volume names predictions by case id (crossmoda_13)
        truth = np.asanyarray(nib.load(str(labels / f'{case}_Label.nii.gz')).dataobj)
        pred = np.asanyarray(nib.load(str(pred_file)).dataobj)
        if truth.shape != pred.shape:
            raise RuntimeError(f'{pred_file}: shape {pred.shape} != label shape {truth.shape}')
        for value, name in STRUCTURES.items():
            per_case[name].append(dice(np.rint(truth) == value, pred == value))
    return {name: float(np.mean(values)) for name, values in per_case.items()}


def options_for(data: Path, args: argparse.Namespace) -> List[str]:
    return tiny_overrides(data, scale=args.size, iters=args.iters, base_channels=args.channels,
                          batch_size=args.batch_size, workers=0) + ['model.decode_head.num_classes=3']


def benchmark(args: argparse.Namespace, root: Path) -> List[dict]:
    raw, data, labels = root / 'raw', root / 'data', root / 'holdout_labels'
    write_crossmoda_release(raw, num_source=args.source, num_target=args.target, num_val=args.holdout,
                            size=args.size, num_slices=args.slices, seed=args.seed, target_label_dir=labels)
    prepare(CONVERTERS['crossmoda'](), raw, data, workers=args.workers, previews=0)
    scans = raw / 'crossmoda_validation/target_validation'
    options = options_for(data, args)
    rows = []
    start = time.perf_counter()
    config = args.config
    run(mim_train(config, root / 'source', options, ['--gpus', '0']), log=root / 'source.log', cwd=REPO)
    checkpoint = last_checkpoint(root / 'source')
    rows.append({'model': 'source-only', 'train_s': time.perf_counter() - start, 'checkpoint': checkpoint,
                 **score(config, checkpoint, options, scans, labels, root / 'pred_source')})
    for k in range(1, args.rounds + 1):
        split = f'target_pseudo{k}'
        start = time.perf_counter()
        cmd = [sys.executable, str(REPO / 'tools/pseudo_label.py'), str(config), str(checkpoint), '--data', str(data), '--split', 'target', '--portion', str(args.portion),
               '--out-split', split, '--cfg-options', *options]
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        record = json.loads((data / 'pseudo_masks' / split / 'pseudo_label.json').read_text())
        round_options = options + [f'train_dataloader.dataset.ann_file=splits/train+{split}.txt',
                                   f'train_dataloader.dataset.data_prefix.seg_map_path=pseudo_masks/{split}/',
                                   f'load_from={checkpoint}']
        work = root / f'round{k}'
        run(mim_train(config, work, round_options, ['--gpus', '0']), log=root / f'round{k}.log', cwd=REPO)
        checkpoint = last_checkpoint(work)
        rows.append({'model': f'self-training round {k}', 'train_s': time.perf_counter() - start,
                     'checkpoint': checkpoint, 'kept_pixels': record['kept_pixels'],
                     **score(config, checkpoint, options, scans, labels, root / f'pred_round{k}')})
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', type=Path, default=DEFAULT_CONFIG,
                        help='CrossMoDA config of every run; rounds override its train ann_file / seg_map_path as '
                             'the -pseudo config does (default: the CE + Dice + foreground-oversampling config)')
    parser.add_argument('--source', type=int, default=6, help='labelled ceT1 cases (default 6)')
    parser.add_argument('--target', type=int, default=6, help='unlabelled hrT2 cases to pseudo-label (default 6)')
    parser.add_argument('--holdout', type=int, default=3, help='labelled hrT2 hold-out cases scored (default 3)')
    parser.add_argument('--size', type=int, default=64, help='slice size, also the training scale (default 64)')
    parser.add_argument('--slices', type=int, default=8, help='slices per volume (default 8)')
    parser.add_argument('--iters', type=int, default=120, help='iterations per training run (default 120)')
    parser.add_argument('--channels', type=int, default=16, help='UNet base channels (default 16)')
    parser.add_argument('--batch-size', type=int, default=4, help='training batch size (default 4)')
    parser.add_argument('--rounds', type=int, default=1, help='self-training rounds (default 1)')
    parser.add_argument('--portion', type=float, default=0.6, help='pseudo_label.py --portion (default 0.6)')
    parser.add_argument('--seed', type=int, default=0, help='phantom seed (default 0)')
    parser.add_argument('--workers', type=int, default=2, help='prepare workers (default 2)')
    parser.add_argument('--keep', type=Path, default=None, help='work here and keep everything (default: a temp dir)')
    args = parser.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix='crossmoda_selftrain_'))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rows = benchmark(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f'synthetic CrossMoDA: {args.source} ceT1 train/val cases, {args.target} hrT2 pseudo-labelled, '
          f'{args.holdout} hrT2 hold-out scored; {args.size}x{args.size}x{args.slices}, {args.iters} iters per run')
    print(f'{"model":<24} {"VS Dice":>8} {"cochlea Dice":>13} {"train s":>8}')
    for row in rows:
        print(f'{row["model"]:<24} {row["vestibular_schwannoma"]:>8.3f} {row["cochlea"]:>13.3f} '
              f'{row["train_s"]:>8.1f}')
    base, last = rows[0]['vestibular_schwannoma'], rows[-1]['vestibular_schwannoma']
    print('command: python tools/benchmarks/crossmoda_self_training.py '
          + ' '.join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)))
    print(f'ratio_vs_source={last / base:.2f}' if base > 0 else 'ratio_vs_source=inf (source-only VS Dice 0)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
