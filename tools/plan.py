"""nnU-Net's dataset fingerprint of a prepared dataset, and mmseg configs planned from it.

Usage: python tools/plan.py DATA [--src RAW]                 # writes DATA/fingerprint.json
       python tools/plan.py DATA --model unet --out CONFIG [--offsets=-1,0,1] [--split fold0_train --val-split fold0_val]

Models: unet, segformer-mit-b0, deeplabv3plus-r50, upernet-swin-t (mmseg_medical.planning.MODELS).
"""
import argparse
import sys
from pathlib import Path

from mmseg_medical.errors import MedSegError, UsageError
from mmseg_medical.planning import MODELS, plan_config, write_fingerprint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='plan.py', description=__doc__.split('\n')[0])
    parser.add_argument('data', type=Path, help='a dataset prepared by tools/prepare_dataset.py')
    parser.add_argument('--src', type=Path, default=None, help='the raw release (default: the one dataset.json names)')
    parser.add_argument('--model', choices=sorted(MODELS), default=None, help='write a config for this model')
    parser.add_argument('--out', type=Path, default=None, help='the config file to write (with --model)')
    parser.add_argument('--offsets', default='0', help='neighbour slice offsets, e.g. -1,0,1 (default 0)')
    parser.add_argument('--split', default='train', help='training split list (default train)')
    parser.add_argument('--val-split', default='val', help='validation split list (default val)')
    parser.add_argument('--no-fingerprint', action='store_true', help='only write the config')
    args = parser.parse_args(argv)
    if (args.model is None) != (args.out is None):
        parser.error('--model and --out go together')
    try:
        offsets = tuple(int(o) for o in args.offsets.split(','))
    except ValueError:
        parser.error(f'--offsets must be integers separated by commas, got {args.offsets!r}')
    try:
        if not args.no_fingerprint:
            print(f'{write_fingerprint(args.data, args.src)}: written')
        if args.model:
            text = plan_config(args.data, args.model, offsets, args.split, args.val_split)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
            print(f'{args.out}: written')
    except UsageError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
