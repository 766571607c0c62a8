"""What a dataset spec is: where its files are, how to read a case, its label map, intensity and split.

A per-dataset module subclasses :class:`DatasetConverter`, states those facts, and registers itself with
:func:`register_converter`; :mod:`.engine` does the reading loop, writing, manifest and statistics once.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np

from ..errors import MedSegError
from ..io.sources import Item, Source, ZipMember, fingerprint_lines, source_items
from ..labels import LabelMap
from ..splits import check_folds, check_val_fraction, folds_as_splits, groups_straddling, holdout_split, kfold_split
from ..volume import Volume

#: Split list holding unpinned cases without labels (never part of a training list).
UNLABELLED_SPLIT = 'unlabelled'

#: name → converter class; filled by :func:`register_converter`.
CONVERTERS: Dict[str, Type['DatasetConverter']] = {}


def register_converter(cls: Type['DatasetConverter']) -> Type['DatasetConverter']:
    """Class decorator: make a converter available to ``tools/prepare_dataset.py <name>``."""
    if cls.name in CONVERTERS:
        raise KeyError(f'converter {cls.name!r} registered twice')
    CONVERTERS[cls.name] = cls
    return cls


@dataclass
class CaseSource:
    """One case (scan) as found on disk.

    ``image``/``label`` are sources (:mod:`mmseg_medical.io.sources`): a path, a list of slice paths,
    named files (``{'lung': ..., 'infection': ...}``) or zip members, whatever the spec's readers take;
    ``label=None`` means unlabelled (image-only). ``group`` is the patient (default: the case itself):
    splits never separate a group. ``split`` pins the case to a split (official test set, unlabelled
    target domain); otherwise the spec's split rule decides. ``aux`` names any other byte source the
    readers use (e.g. a header spacing is taken from), so the up-to-date fingerprint covers it.
    """

    case_id: str
    image: Source
    label: Source = None
    split: Optional[str] = None
    group: Optional[str] = None
    aux: Source = None
    extra: dict = field(default_factory=dict)

    @property
    def patient(self) -> str:
        return self.group or self.case_id

    def items(self) -> Iterator[Item]:
        """Every file or zip member this case reads."""
        yield from source_items(self.image)
        yield from source_items(self.label)

    def files(self) -> Iterator[Path]:
        """Every file this case reads (a zip member counts as its archive)."""
        for item in self.items():
            yield item.archive if isinstance(item, ZipMember) else item

    def fingerprint_lines(self) -> Iterator[str]:
        yield from fingerprint_lines(self.image)
        yield '|label'
        yield from fingerprint_lines(self.label)
        yield '|aux'
        yield from fingerprint_lines(self.aux)


@dataclass
class CaseInfo:
    """What the split rules see of a converted case (also stored in ``OUT/cases/<case>.json``)."""

    case_id: str
    labelled: bool
    has_foreground: bool
    group: str
    pinned: Optional[str] = None


class DatasetConverter:
    """Base class of dataset specs. Subclasses set the class attributes and implement ``find_cases``.

    Converters are pickled to the worker processes, so a class made at run time needs a ``__reduce__``
    that rebuilds it (see :mod:`.nifti_pairs`). ``CaseSource.extra`` is stored as ``meta`` in
    ``cases/<case>.json`` (domain, site, ...; anything JSON can hold, paths as text).

    Splits are lists of cases over one slice store (``OUT/splits/<name>.txt``): the default is a seeded,
    foreground-stratified, patient-group hold-out ``train``/``val`` (``--val-fraction``); ``--folds K``
    adds ``fold{k}_train``/``fold{k}_val``; cases pinned by ``CaseSource.split`` get their own lists and
    a spec may add official lists (:meth:`official_splits`). Split settings never change the slices.
    """

    #: CLI name (``prepare_dataset.py <name>``).
    name: ClassVar[str]
    #: One line for ``--help``.
    description: ClassVar[str] = ''
    #: Classes and raw label values.
    label_map: ClassVar[LabelMap]
    #: What ``--src`` must contain, quoted in the error when nothing is found.
    expected_layout: ClassVar[str] = ''
    #: The mmseg dataset type (``dataset=dict(type=...)`` in configs) that reads this converter's output.
    dataset_type: ClassVar[Optional[str]] = None
    #: Further dataset types that read this converter's output (an edition of the release with other classes).
    dataset_types: ClassVar[Tuple[str, ...]] = ()

    #: Classes that a left-right mirroring exchanges, by name (:mod:`mmseg_medical.laterality`); those of
    #: ``label_map``'s classes go to ``dataset.json`` (``mirror_pairs``) and the mmseg dataset's metainfo.
    mirror_pairs: ClassVar[Tuple[Tuple[str, str], ...]] = ()
    #: True when the spec's own options can name every input, so ``--src`` may be left out.
    src_optional: ClassVar[bool] = False
    #: Exit status of ``prepare_dataset.py`` for a bad input file (:class:`MedSegError`); usage errors are 2.
    input_error_status: ClassVar[int] = 1

    def __init__(self, seed: int = 0, val_fraction: float = 0.2, folds: Optional[int] = None,
                 skip_bad: bool = False, nifti_out: Optional[Path] = None, **options: Any) -> None:
        self.seed = seed
        self.val_fraction = val_fraction
        self.folds = folds
        self.skip_bad = bool(skip_bad)
        self.nifti_out = None if nifti_out is None else Path(nifti_out)
        self.options = options
        #: case → why it was skipped (``--skip-bad``), filled by :meth:`skip_or_raise` and the engine.
        self.skipped: Dict[str, str] = {}

    def skip_or_raise(self, case_id: str, error: MedSegError) -> None:
        """In ``find_cases``: with ``--skip-bad`` record why ``case_id`` is left out, else raise ``error``."""
        if not self.skip_bad:
            raise error
        self.skipped[case_id] = str(error)

    def card(self) -> dict:
        """Extra facts for ``dataset.json`` found while reading the release (default none)."""
        return {}

    # ---- CLI -------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Dataset-specific options (besides the common --src/--out/--workers/--seed/...)."""

    def settings(self) -> dict:
        """Everything that changes the slices (part of the up-to-date fingerprint and dataset.json)."""
        return dict(self.options)

    def split_settings(self) -> dict:
        """What only changes the split lists (a change rewrites the lists, never the slices)."""
        return {'seed': self.seed, 'val_fraction': self.val_fraction, 'folds': self.folds}

    # ---- the spec --------------------------------------------------------------------------------
    def find_cases(self, src: Path) -> List[CaseSource]:
        raise NotImplementedError

    def read_image(self, case: CaseSource) -> Volume:
        """The case's image volume as stored (HU, MRI intensities or 8-bit)."""
        raise NotImplementedError

    def read_label(self, case: CaseSource) -> Optional[Volume]:
        """The case's label volume with raw values, or ``None`` when unlabelled."""
        raise NotImplementedError

    def to_uint8(self, case: CaseSource, image: Volume) -> np.ndarray:
        """Intensity rule: raw image → (Z, H, W) uint8."""
        raise NotImplementedError

    def read_channels(self, case: CaseSource) -> List[Volume]:
        """The case's image channels (same voxel grid, checked by the engine); default one, :meth:`read_image`.
        Channel ``c > 0`` is stored as ``images_<c:04d>/<slice>.png`` beside ``images/`` (channel 0)."""
        return [self.read_image(case)]

    def channel_uint8(self, case: CaseSource, channel: int, image: Volume) -> np.ndarray:
        """Intensity rule of one channel (default :meth:`to_uint8`)."""
        return self.to_uint8(case, image)

    def spatial_transform(self, image: Volume, label: Optional[Volume] = None
                          ) -> Tuple[Volume, Optional[Volume], Optional[dict]]:
        """Optional in-plane resampling / cropping of the display-order volumes (default: none).

        Returns the new image and label and a JSON-serialisable record, stored as ``spatial`` in
        ``cases/<case>.json``, from which :func:`mmseg_medical.spatial.invert_spatial` maps a prediction on
        the new grid back onto the display grid (restacking, ``infer_volume``). Also applied, with
        ``label=None``, to scans given to ``infer_volume``, so it must depend on the settings only.
        """
        return image, label, None

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """Intensity rule for a whole scan given at inference time (NIfTI / DICOM) → (Z, H, W) uint8.

        Must equal what :meth:`to_uint8` does to the same scan at prepare time; datasets whose slices do
        not come from such scans keep this default, which refuses.
        """
        raise MedSegError(volume.source, f'the {self.name} dataset states no intensity rule for NIfTI/DICOM '
                                         'volumes, so they cannot be segmented with its models')

    # ---- splits ----------------------------------------------------------------------------------
    def assign_splits(self, has_foreground: Mapping[str, bool], groups: Mapping[str, str]) -> Dict[str, str]:
        """Case → ``train``/``val`` for the labelled cases not pinned by ``CaseSource.split``."""
        return holdout_split(list(has_foreground), has_foreground, self.val_fraction, self.seed, groups)

    def strata(self, cases: Mapping[str, CaseInfo]) -> Dict[str, Any]:
        """Case → the label hold-out and folds are stratified on (default: has foreground). A spec may
        give a finer hashable label (Cranium: the patient's main hemorrhage subtype)."""
        return {c: i.has_foreground for c, i in cases.items()}

    def fold_pool(self, cases: Mapping[str, CaseInfo]) -> List[str]:
        """The cases ``--folds K`` divides into folds: by default the labelled cases no split pins. A spec
        may choose others (HemSeg: its published train + val). Must not read ``has_foreground``, which
        :meth:`check_split_options` does not know yet."""
        return [c for c, i in cases.items() if i.labelled and not i.pinned]

    def fold_lists(self, pool: Sequence[str], strata: Mapping[str, Any], groups: Mapping[str, str]
                   ) -> List[Dict[str, List[str]]]:
        """``--folds K`` over ``pool``: one ``{'train', 'val'}`` per fold (default: stratified patient-group
        folds, :func:`~mmseg_medical.splits.kfold_split`)."""
        return folds_as_splits(kfold_split(pool, strata, self.folds, self.seed, groups), self.folds)

    def official_splits(self, cases: Mapping[str, CaseInfo]) -> Dict[str, List[str]]:
        """Extra named case lists a spec defines (official folds, ...); default none."""
        return {}

    def split_lists(self, cases: Mapping[str, CaseInfo]) -> Tuple[Dict[str, str], Dict[str, List[str]]]:
        """(case → its manifest ``split`` column, split name → sorted cases) for every split list.

        Unpinned labelled cases: hold-out ``train``/``val``; with ``--folds K``, ``fold{k}_train`` /
        ``fold{k}_val`` over the :meth:`fold_pool`; unpinned unlabelled cases: ``unlabelled``; pinned
        cases: their split; then the spec's :meth:`official_splits`. No patient group is in two splits of
        a train/val pair.
        """
        free = {c: i for c, i in cases.items() if not i.pinned and i.labelled}
        groups = {c: i.group for c, i in cases.items()}
        split_of = {c: i.pinned or UNLABELLED_SPLIT for c, i in cases.items() if c not in free}
        lists: Dict[str, List[str]] = {}
        exclusive: List[Tuple[str, str]] = []
        strata = self.strata(cases)
        if free:
            fg = {c: strata[c] for c in free}
            split_of.update(self.assign_splits(fg, {c: groups[c] for c in free}))
            exclusive.append(('train', 'val'))
        pool = self.fold_pool(cases) if self.folds else []
        if pool:
            for k, fold in enumerate(self.fold_lists(pool, {c: strata[c] for c in pool}, {c: groups[c] for c in pool})):
                lists[f'fold{k}_train'], lists[f'fold{k}_val'] = fold['train'], fold['val']
                exclusive.append((f'fold{k}_train', f'fold{k}_val'))
        for case, split in split_of.items():
            lists.setdefault(split, []).append(case)
        for name, members in self.official_splits(cases).items():
            lists[name] = list(members)
        lists = {name: sorted(members) for name, members in sorted(lists.items())}
        bad = groups_straddling(lists, groups, exclusive)
        if bad:  # cannot happen with the rules above; guards specs that override them
            raise MedSegError(None, f'patient groups in two splits: {", ".join(bad[:5])}')
        return split_of, lists

    def split_files(self, lists: Mapping[str, List[str]]) -> Dict[str, Any]:
        """Extra JSON files written as ``OUT/splits/<name>``: nnU-Net's ``folds.json`` with ``--folds``."""
        if not self.folds:
            return {}
        return {'folds.json': [{'train': lists[f'fold{k}_train'], 'val': lists[f'fold{k}_val']}
                               for k in range(self.folds)]}

    def check_split_options(self, cases: Sequence[CaseSource]) -> None:
        """Usage errors of the split options, raised before any conversion (ValueError)."""
        check_val_fraction(self.val_fraction)
        if self.folds is not None:
            infos = {c.case_id: CaseInfo(c.case_id, c.label is not None, False, c.patient, c.split) for c in cases}
            check_folds(self.folds, len({infos[c].group for c in self.fold_pool(infos)}))
        pinned = {c.patient for c in cases if c.split}
        mixed = sorted(pinned & {c.patient for c in cases if not c.split})
        if mixed:
            raise ValueError(f'patient group {mixed[0]!r} has both pinned and unpinned cases')


def find_below(src: Path, marker: Callable[[Path], bool], max_depth: int = 4) -> Optional[Path]:
    """The first folder at or below ``src`` (breadth-first, up to ``max_depth`` levels, sorted by name,
    hidden folders skipped) for which ``marker`` holds, or None."""
    level = [Path(src)] if Path(src).is_dir() else []
    for _ in range(max_depth + 1):
        found = [d for d in level if marker(d)]
        if found:
            return sorted(found)[0]
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir() and not c.name.startswith('.'))
    return None


def find_release_dir(src: Path, marker: Callable[[Path], bool], what: str, max_depth: int = 4) -> Path:
    """:func:`find_below`, or one error naming ``src`` and ``what`` was expected.

    Users unzip releases at different depths; never hard-code it.
    """
    src = Path(src)
    if not src.is_dir():
        raise MedSegError(src, f'--src is not a folder (expected {what})')
    found = find_below(src, marker, max_depth)
    if found is None:
        raise MedSegError(src, f'no dataset found: expected {what}')
    return found


def _fraction(text: str) -> float:
    try:
        return check_val_fraction(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _folds(text: str) -> int:
    try:
        return check_folds(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every dataset takes."""
    parser.add_argument('--src', type=Path, default=None, help='folder holding the raw release (any depth)')
    parser.add_argument('--out', type=Path, required=True, help='output dataset root, e.g. data/<name>')
    parser.add_argument('--workers', type=int, default=None, help='processes (default: CPU count)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT even if up to date or prepared from other inputs (only a dataset this '
                             'tool prepared: any other folder with files in it is never replaced)')
    parser.add_argument('--seed', type=int, default=0, help='split seed (default 0)')
    parser.add_argument('--val-fraction', type=_fraction, default=0.2,
                        help='share of patient groups in val, in (0, 1) (default 0.2)')
    parser.add_argument('--folds', type=_folds, default=None,
                        help='also write K stratified patient-group folds as split lists fold{k}_train / fold{k}_val')
    parser.add_argument('--skip-bad', action='store_true',
                        help='convert the cases that can be converted; list every skipped case and why in OUT/skipped.json')
    parser.add_argument('--nifti-out', type=Path, default=None,
                        help='also write each image volume as read (source voxel order) to DIR/<case>.nii.gz')
    parser.add_argument('--previews', type=int, default=4,
                        help='overlay PNGs of the slices with most foreground under OUT/previews (0: none)')


def build_converter(name: str, args: argparse.Namespace, extra: Sequence[str]) -> DatasetConverter:
    cls = CONVERTERS[name]
    options = {k: v for k, v in vars(args).items() if k in extra}
    return cls(seed=args.seed, val_fraction=args.val_fraction, folds=args.folds, skip_bad=args.skip_bad,
               nifti_out=args.nifti_out, **options)
