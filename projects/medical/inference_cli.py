"""``tools/infer_volume.py CONFIG CHECKPOINT --input SCAN|FOLDER --output OUT_DIR``: segment whole scans.

Writes ``OUT_DIR/<case>.nii.gz`` (uint8 labels, the scan's affine) for every NIfTI file or DICOM series
found (see :mod:`mmseg_medical.inference`). Bad input prints ``error: <path>: <problem>`` on one line and
exits 1 without writing anything.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from .errors import MedSegError
from .inference import find_inputs, infer, intensity_for, load_config, load_model, spatial_for


def build_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        prog='infer_volume.py',
        description='Segment NIfTI volumes / DICOM series slice by slice with a trained 2D model and write '
                    'OUT_DIR/<case>.nii.gz label maps with the input geometry.')
    parser.add_argument('config', type=Path, help='the training config')
    parser.add_argument('checkpoint', type=Path, help='a checkpoint of that config')
    parser.add_argument('--input', required=True, type=Path,
                        help='a .nii/.nii.gz file, a DICOM series folder, or a folder of them')
    parser.add_argument('--output', required=True, type=Path, help='folder for <case>.nii.gz predictions')
    parser.add_argument('--batch-size', type=int, default=8, help='slices per forward pass (default 8)')
    parser.add_argument('--postprocess', type=Path, default=None,
                        help='postprocessing.json (VolumeMetric postprocess=..., written under mim test --out DIR/volumes/): '
                             'remove small connected components as chosen on validation')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda[:N] (default: cuda if available, else cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config settings as with mim train/test, e.g. model.backbone.base_channels=16')
    return parser


def run(args: argparse.Namespace) -> List[Path]:
    """Check the inputs, load config and model, segment; returns the written files."""
    import torch

    if args.batch_size < 1:
        raise MedSegError('--batch-size', f'must be >= 1, got {args.batch_size}')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device != 'cpu' and not device.startswith('cuda'):
        raise MedSegError('--device', f'expected cpu or cuda[:N], got {device!r}')
    inputs = find_inputs(args.input)
    cfg = load_config(args.config, args.cfg_options)
    intensity = intensity_for(cfg)
    model = load_model(cfg, args.checkpoint, device)
    if args.postprocess is not None:
        from .evaluation.postprocess import load_rules
        load_rules(args.postprocess)  # a bad file is an error before any scan is read
    return infer(inputs, intensity, model, args.output, args.batch_size, spatial_for(cfg), args.postprocess)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 bad input, 2 usage error)."""
    args = build_parser().parse_args(argv)
    try:
        written = run(args)
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    for path in written:
        print(path)
    print(f'{len(written)} label map(s) written to {args.output}')
    return 0
