"""``tools/infer_volume.py``: segment whole scans with one model or an ensemble (see ``--help``).

    infer_volume.py [CONFIG] CHECKPOINT [CHECKPOINT ...] (--input SCAN|FOLDER | --data PREPARED --split NAME)
                    --output OUT_DIR [--model CONFIG CHECKPOINT [CHECKPOINT ...]] [--tta none|flip|flip2]
                    [--save-probabilities [--probabilities-dtype float16|float32]] [--label-suffix _Label] ...

Without CONFIG (the first word not a ``.py`` config), each checkpoint is built from the training config it
carries (mmengine's ``meta['cfg']``). With CONFIG, a checkpoint trained on other input than the config gives
(another slice stack, windows, normalisation) is refused with one line, even where its shapes fit.
Several checkpoints (of one config, or ``--model`` per config) are an ensemble: softmax probabilities
averaged per voxel, then argmax. Writes ``OUT_DIR/<case><suffix>.nii.gz`` (uint8 labels, the scan's affine)
per case and, with ``--save-probabilities``, ``OUT_DIR/<case>.npz`` (see :mod:`mmseg_medical.inference`), and
``OUT_DIR/infer_volume.json`` listing them: other files in OUT_DIR are never deleted, are named in one warning and
are not scored by ``evaluate_volumes``. OUT_DIR equal to an input, containing one or inside one where it would be
read is refused (exit 2).
Bad input prints ``error: <path>: <problem>`` on one line and exits 1 without writing anything; a usage
error prints one ``error:`` line and exits 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import MedSegError, UsageError
from .inference import TTA_MODES, infer

PROBABILITY_DTYPES = {'float16': np.float16, 'float32': np.float32}


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints the usage too; one line is enough (see --help)
        self.exit(2, f'error: {message} (see {self.prog} --help)\n')


def build_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    parser = _OneLineParser(
        prog='infer_volume.py',
        description='Segment NIfTI volumes, DICOM series or the cases of a prepared dataset slice by slice with a '
                    'trained 2D model or an ensemble, and write OUT_DIR/<case>.nii.gz label maps with the source '
                    'geometry (and OUT_DIR/<case>.npz probabilities with --save-probabilities).')
    parser.add_argument('config', type=Path, nargs='?', metavar='CONFIG',
                        help='the training config (leave out to read it from each checkpoint: a first word that '
                             'does not end in .py/.json/.yaml is a checkpoint)')
    parser.add_argument('checkpoints', type=Path, nargs='*', metavar='CHECKPOINT',
                        help='one or more checkpoints of that config (several: an ensemble, e.g. the five folds)')
    parser.add_argument('--model', nargs='+', action='append', default=[], metavar=('CONFIG', 'CHECKPOINT'),
                        help='another config with its checkpoint(s), or checkpoints alone; repeat for one config '
                             'per model. All models '
                             'of an ensemble must have the same classes and read scans the same way')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--input', type=Path,
                        help='a .nii/.nii.gz file, a DICOM series folder, or a folder holding them at any depth '
                             '(label files and folders such as masks/ are skipped)')
    source.add_argument('--data', type=Path,
                        help='a prepared dataset (prepare_dataset.py --out): segment the cases of --split, read '
                             'from its raw release as prepare read them')
    parser.add_argument('--split', help='with --data: the split list (splits.json), e.g. test, val, fold0_val')
    parser.add_argument('--src', type=Path, default=None,
                        help='with --data: where the raw release is now (default: the "source" in dataset.json)')
    parser.add_argument('--output', required=True, type=Path,
                        help='folder for <case>.nii.gz predictions and infer_volume.json (the list of files written); '
                             'other files in it are kept, named in a warning and not scored by evaluate_volumes')
    parser.add_argument('--tta', choices=sorted(TTA_MODES), default='none',
                        help='test-time mirroring: flip = left-right, flip2 = both in-plane axes (nnU-Net 2D); '
                             'the probabilities of the mirrored slices are mirrored back (left-right: with the '
                             "dataset's mirror pairs, e.g. left_lung/right_lung, exchanged) and averaged; a model "
                             'with left/right classes and no declared pairs refuses the left-right mirroring')
    parser.add_argument('--save-probabilities', action='store_true',
                        help='also write OUT_DIR/<case>.npz with the array "probabilities" (classes x the source '
                             "scan's voxel shape, NIfTI (i, j, k) order)")
    parser.add_argument('--probabilities-dtype', choices=sorted(PROBABILITY_DTYPES), default='float16',
                        help='dtype of the saved probabilities (default float16)')
    parser.add_argument('--label-suffix', default='',
                        help="appended to the case id in label file names, e.g. _Label for the CrossMoDA challenge's "
                             '<case>_Label.nii.gz (default none: <case>.nii.gz)')
    parser.add_argument('--batch-size', type=int, default=8, help='slices per forward pass (default 8)')
    parser.add_argument('--postprocess', type=Path, default=None,
                        help='postprocessing.json (VolumeMetric postprocess=..., written under mim test --out DIR/volumes/): '
                             'remove small connected components as chosen on validation (labels only)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda[:N] (default: cuda if available, else cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config settings as with mim train/test (all models), e.g. '
                             'model.backbone.base_channels=16')
    return parser


#: File endings of mmengine configs; any other first word of a model is a checkpoint given alone.
CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')


def model_list(args: argparse.Namespace) -> List[Tuple[Optional[Path], Path]]:
    """``(config, checkpoint)`` per model, positional ones first; config ``None`` for checkpoints given alone
    (no config file first: each is built from the training config it carries). Raises on a config without
    checkpoint."""
    groups = ([[args.config, *args.checkpoints]] if args.config is not None else []) + \
        [[Path(p) for p in group] for group in args.model]
    if not groups:
        raise MedSegError('--model', 'no model given: pass [CONFIG] CHECKPOINT [CHECKPOINT ...] or --model')
    models: List[Tuple[Optional[Path], Path]] = []
    for first, *rest in groups:
        if first.suffix not in CONFIG_SUFFIXES:
            models += [(None, checkpoint) for checkpoint in (first, *rest)]
            continue
        if not rest:
            raise MedSegError(first, 'no checkpoint given for this config')
        models += [(first, checkpoint) for checkpoint in rest]
    return models


def _check_usage(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise MedSegError('--batch-size', f'must be >= 1, got {args.batch_size}')
    if args.data is not None and not args.split:
        raise MedSegError('--split', 'give the split list of --data to segment, e.g. --split test')
    if args.data is None and (args.split or args.src):
        raise MedSegError('--split' if args.split else '--src', 'goes with --data PREPARED')
    if args.label_suffix and ('/' in args.label_suffix or args.label_suffix.startswith('.')):
        raise MedSegError('--label-suffix', f'must be a plain name ending, got {args.label_suffix!r}')


def run(args: argparse.Namespace) -> List[Path]:
    """Check the options, then :func:`mmseg_medical.inference.infer`; returns the written files."""
    import torch

    _check_usage(args)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device != 'cpu' and not device.startswith('cuda'):
        raise MedSegError('--device', f'expected cpu or cuda[:N], got {device!r}')
    dtype = PROBABILITY_DTYPES[args.probabilities_dtype] if args.save_probabilities else None
    return infer(model_list(args), args.output, input=args.input, data=args.data, split=args.split, src=args.src,
                 cfg_options=args.cfg_options, tta=args.tta, batch_size=args.batch_size, device=device,
                 postprocess=args.postprocess, probabilities_dtype=dtype, label_suffix=args.label_suffix)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 bad input, 2 usage error)."""
    args = build_parser().parse_args(argv)
    try:
        written = run(args)
    except UsageError as exc:  # e.g. --output over, around or inside the input
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    for path in written:
        print(path)
    labels = sum(1 for p in written if p.name.endswith('.nii.gz'))
    print(f'{labels} label map(s)' + (f' and {len(written) - labels} probability file(s)' if len(written) > labels
                                      else '') + f' written to {args.output}')
    return 0
