"""``tools/prepare_dataset.py <name> --src RAW --out OUT [--workers N] [--overwrite] [options]``."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Dict, List, NoReturn, Optional

from ..errors import MedSegError, UsageError
from . import CONVERTERS, format_statistics, prepare
from .base import build_converter, common_arguments


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'error: {self.prog}: {message} (see --help)\n')


def build_parser() -> tuple:
    parser = _Parser(prog='prepare_dataset.py', description='Convert a public medical dataset into 2D PNG '
                     'slices + masks + manifest.csv for MMSegmentation.',
                     epilog='datasets: ' + '; '.join(f'{n}: {c.description}' for n, c in sorted(CONVERTERS.items())))
    sub = parser.add_subparsers(dest='dataset', metavar='DATASET', required=True, parser_class=_Parser,
                                help=' | '.join(sorted(CONVERTERS)))
    extras: Dict[str, List[str]] = {}
    for name, cls in sorted(CONVERTERS.items()):
        p = sub.add_parser(name, help=cls.description, description=cls.__doc__ or cls.description)
        common_arguments(p)
        before = {a.dest for a in p._actions}
        cls.add_arguments(p)
        extras[name] = [a.dest for a in p._actions if a.dest not in before]
    return parser, extras


def main(argv: Optional[List[str]] = None) -> int:
    parser, extras = build_parser()
    args = parser.parse_args(argv)
    if args.src is None and not CONVERTERS[args.dataset].src_optional:
        parser.error(f'{args.dataset}: the following arguments are required: --src')
    try:
        converter = build_converter(args.dataset, args, extras[args.dataset])
    except UsageError as exc:  # e.g. an option's file that cannot be read
        print(f'error: {exc}', file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        stats = prepare(converter, args.src, args.out, workers=args.workers, overwrite=args.overwrite,
                        previews=args.previews)
    except UsageError as exc:  # e.g. --out over, around or inside --src, or a folder prepare did not write
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return converter.input_error_status
    except KeyboardInterrupt:
        print('error: interrupted; nothing was written', file=sys.stderr)
        return 130
    state = 'up to date, nothing to do' if stats.get('up_to_date') else f'written in {time.perf_counter() - start:.1f} s'
    if stats.get('skipped'):
        print(f'warning: --skip-bad: skipped {len(stats["skipped"])} case(s), listed with the reason in '
              f'{args.out / "skipped.json"}:', file=sys.stderr)
        for case, why in stats['skipped'].items():
            print(f'  {case}: {why}', file=sys.stderr)
    print(format_statistics(stats))
    print(f'\n{args.out}: {state}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
