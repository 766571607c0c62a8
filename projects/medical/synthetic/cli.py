"""``python tools/generate_synthetic.py <dataset> --out DIR ...``: write a synthetic raw release.

One subcommand per dataset. To add one, write ``_add_<name>(subparsers)`` that declares its arguments
and sets ``run`` to a function ``(args) -> Path`` returning the folder written, and list it in
``_DATASETS``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..errors import MedSegError
from .covid19 import LAYOUTS as COVID19_LAYOUTS
from .covid19 import ORIENTATIONS as COVID19_ORIENTATIONS
from .covid19 import write_covid19_release
from .cranium import LAYOUTS, write_cranium_release
from .crossmoda import NAMINGS, write_crossmoda_release
from .hemseg import write_hemseg_release


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', type=Path, required=True, help='folder to write the release under')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed, same files)')


def _add_cranium(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser('cranium', help='CT-ICH release (JPG + NIfTI layouts, csv)',
                                   description='Synthetic CT-ICH 1.0.0 release of head CT phantoms.')
    _common(parser)
    parser.add_argument('--patients', type=int, default=6, help='number of patients (ids from 049)')
    parser.add_argument('--slices', type=int, default=24, help='slices per patient')
    parser.add_argument('--size', type=int, default=128, help='rows = columns per slice')
    parser.add_argument('--layouts', default=','.join(LAYOUTS),
                        help=f'comma-separated subset of {",".join(LAYOUTS)}')
    parser.add_argument('--nest', default='Cranium',
                        help="folder between --out and the release folder ('' for none)")
    parser.add_argument('--no-bleed-every', type=int, default=4,
                        help='every N-th patient has no hemorrhage (0: all bleed)')
    parser.set_defaults(run=lambda args: write_cranium_release(
        args.out, num_patients=args.patients, num_slices=args.slices, size=args.size, seed=args.seed,
        layouts=args.layouts, nest=args.nest or None, no_bleed_every=args.no_bleed_every))


def _add_hemseg(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'hemseg', help='HemSeg-200/500 release (flat RSNA DICOM folder, jsonl, label zip, split CSVs)',
        description='Synthetic HemSeg release of head CT phantoms: stage_2_train/ID_<hex>.dcm (both RSNA header '
                    'variants, shuffled names, scan 1 gantry tilted), the scan list(s), IPH_IVH_label.zip '
                    'and/or HemSeg-500.zip (or folders) and {train,val,test}_set.csv.')
    _common(parser)
    parser.add_argument('--scans', type=int, default=6,
                        help='number of scans (official split cycles train, train, val, test)')
    parser.add_argument('--slices', type=int, default=8, help='slices per scan')
    parser.add_argument('--size', type=int, default=64, help='rows = columns per slice')
    parser.add_argument('--scan-list', choices=('200', '500', 'both'), default='200',
                        help="'200': annotion_file_info.jsonl (patient, scan_, slice_list as a list); '500': "
                             'annotion_file_info_500.jsonl (patient_name, scan_name, slice_list as an object)')
    parser.add_argument('--archives', choices=('200', '500', 'both'), default='200',
                        help="label archives: '200': IPH_IVH_label (HemSeg-200 subset when 500 is in the release); "
                             "'500': HemSeg-500 (every scan, folders = the split CSVs)")
    parser.add_argument('--labels', choices=('zip', 'folder'), default='zip',
                        help='each archive as <archive>.zip or as the extracted <archive>/ folder')
    parser.set_defaults(run=lambda args: write_hemseg_release(
        args.out, num_scans=args.scans, num_slices=args.slices, size=args.size, seed=args.seed,
        scan_list=args.scan_list, labels=args.labels, archives=args.archives))


def _add_crossmoda(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser('crossmoda', help='CrossMoDA release (ceT1 source + labels, hrT2 target)',
                                   description='Synthetic CrossMoDA release of head MRI phantoms (NIfTI).')
    _common(parser)
    parser.add_argument('--naming', choices=NAMINGS, default='2021',
                        help='file naming of that edition (2023: sites etz/ldn/ukm, T2 targets, labels 1 intra-meatal '
                             'VS, 2 extra-meatal VS, 3 cochlea)')
    parser.add_argument('--label-values', type=int, nargs=3, default=(1, 2, 3), metavar=('INTRA', 'EXTRA', 'COCHLEA'),
                        help='--naming 2023: raw values of the three structures (default 1 2 3)')
    parser.add_argument('--source', type=int, default=4, help='labelled ceT1 training cases')
    parser.add_argument('--target', type=int, default=3, help='unlabelled hrT2 (2023: T2) training cases')
    parser.add_argument('--val', type=int, default=2, help='hrT2 (2023: T2) validation cases')
    parser.add_argument('--slices', type=int, default=8, help='slices per case')
    parser.add_argument('--size', type=int, default=64, help='rows = columns per slice')
    parser.add_argument('--target-label-dir', type=Path, default=None,
                        help='also write labels of the hrT2 cases here (not part of the real release)')
    parser.set_defaults(run=lambda args: write_crossmoda_release(
        args.out, naming=args.naming, num_source=args.source, num_target=args.target, num_val=args.val,
        size=args.size, num_slices=args.slices, seed=args.seed, target_label_dir=args.target_label_dir,
        label_values=tuple(args.label_values)))


def _add_covid19(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser('covid19', help='COVID-19-CT-Seg release (20 cases, Zenodo or Kaggle layout)',
                                   description='Synthetic COVID-19-CT-Seg release of chest CT phantoms.')
    _common(parser)
    parser.add_argument('--layout', choices=COVID19_LAYOUTS, default='zenodo',
                        help='zenodo: .nii.gz folders; kaggle: .nii folders + metadata.csv')
    parser.add_argument('--slices', type=int, default=4, help='slices per case')
    parser.add_argument('--size', type=int, default=32, help='rows = columns per slice')
    parser.add_argument('--nest', default='downloads', help='folder between --out and the release folders')
    parser.add_argument('--orientation', choices=sorted(COVID19_ORIENTATIONS), default='LPS',
                        help='voxel order of the stored scans and masks (world positions unchanged; default: LPS)')
    parser.set_defaults(run=lambda args: write_covid19_release(
        args.out, layout=args.layout, num_slices=args.slices, size=args.size, seed=args.seed, nest=args.nest,
        orientation=args.orientation))


def _add_nnunet(subparsers: argparse._SubParsersAction) -> None:
    from .nnunet import CT_LABELS, MR_CHANNELS, MR_LABELS, write_nnunet_release

    parser = subparsers.add_parser('nnunet', help="nnU-Net v2 raw dataset (DatasetXXX_Name; 2-channel MR or CT)",
                                   description="Synthetic dataset in nnU-Net v2's raw layout: dataset.json, imagesTr, "
                                               'labelsTr, imagesTs, labelsTs.')
    _common(parser)
    parser.add_argument('--name', default=None, help='dataset folder (default Dataset901_Toy; --ct: Dataset902_Organs)')
    parser.add_argument('--ct', action='store_true', help='a multi-organ CT set (one channel CT, 3 organs) in place '
                                                          'of the 2-channel MR set (T2, ADC; 2 zones)')
    parser.add_argument('--training', type=int, default=6, help='imagesTr cases')
    parser.add_argument('--test', type=int, default=2, help='imagesTs cases (with labelsTs)')
    parser.add_argument('--file-ending', default='.nii.gz', choices=('.nii.gz', '.nii', '.nrrd', '.mha'))
    parser.set_defaults(run=lambda args: write_nnunet_release(
        args.out, name=args.name or ('Dataset902_Organs' if args.ct else 'Dataset901_Toy'),
        num_training=args.training, num_test=args.test, channels=('CT',) if args.ct else MR_CHANNELS,
        labels=CT_LABELS if args.ct else MR_LABELS, file_ending=args.file_ending, seed=args.seed))


def _add_msd(subparsers: argparse._SubParsersAction) -> None:
    from .nnunet import write_msd_release

    parser = subparsers.add_parser('msd', help='Medical Segmentation Decathlon task (4D multi-modality images)',
                                   description='Synthetic Decathlon Task01_BrainTumour-like task: 4D images '
                                               '(FLAIR, T1w, T1gd, T2w), 3 labels, dataset.json.')
    _common(parser)
    parser.add_argument('--training', type=int, default=5, help='training cases')
    parser.add_argument('--test', type=int, default=1, help='test cases (images only)')
    parser.set_defaults(run=lambda args: write_msd_release(args.out, num_training=args.training,
                                                           num_test=args.test, seed=args.seed))


_DATASETS: List[Callable[[argparse._SubParsersAction], None]] = [_add_cranium, _add_hemseg, _add_crossmoda,
                                                                 _add_covid19, _add_nnunet, _add_msd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='generate_synthetic.py',
                                     description='Write synthetic raw data in the real releases\' formats.')
    subparsers = parser.add_subparsers(dest='dataset', required=True, metavar='DATASET')
    for add in _DATASETS:
        add(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 bad arguments or input)."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        written = args.run(args)
    except (ValueError, MedSegError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(f'{args.dataset}: wrote {written} in {time.perf_counter() - start:.2f} s')
    return 0
