"""What a dataset spec is: where its files are, how to read a case, its label map, intensity and split.

A per-dataset module subclasses :class:`DatasetConverter`, states those facts, and registers itself with
:func:`register_converter`; :mod:`.engine` does the reading loop, writing, manifest and statistics once.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Mapping, Optional, Sequence, Type

import numpy as np

from ..errors import MedSegError
from ..labels import LabelMap
from ..splits import folds_as_splits, holdout_split, kfold_split
from ..volume import Volume

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
    """One case (patient/scan) as found on disk.

    ``image``/``label`` are whatever the spec's readers take (a path, or a list of slice paths); a case
    with ``label=None`` is unlabelled. ``split`` pins the case to a split (official test set, unlabelled
    target domain); otherwise the spec's split rule decides.
    """

    case_id: str
    image: Any
    label: Any = None
    split: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def files(self) -> Iterator[Path]:
        """Every file this case reads (for the up-to-date fingerprint)."""
        for item in (self.image, self.label):
            if item is None:
                continue
            for path in (item if isinstance(item, (list, tuple)) else [item]):
                if path is not None:
                    yield Path(path)


class DatasetConverter:
    """Base class of dataset specs. Subclasses set the class attributes and implement ``find_cases``.

    The default split is a seeded, foreground-stratified patient-level hold-out (``--val-fraction``) or,
    with ``--folds K``, K stratified folds written as splits ``fold0``..``fold{K-1}``.
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

    def __init__(self, seed: int = 0, val_fraction: float = 0.2, folds: Optional[int] = None,
                 **options: Any) -> None:
        self.seed = seed
        self.val_fraction = val_fraction
        self.folds = folds
        self.options = options

    # ---- CLI -------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Dataset-specific options (besides the common --src/--out/--workers/--seed/...)."""

    def settings(self) -> dict:
        """Everything that changes the output (part of the up-to-date fingerprint and dataset.json)."""
        return {'seed': self.seed, 'val_fraction': self.val_fraction, 'folds': self.folds, **self.options}

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

    def volume_intensity(self, volume: Volume) -> np.ndarray:
        """Intensity rule for a whole scan given at inference time (NIfTI / DICOM) → (Z, H, W) uint8.

        Must equal what :meth:`to_uint8` does to the same scan at prepare time; datasets whose slices do
        not come from such scans keep this default, which refuses.
        """
        raise MedSegError(volume.source, f'the {self.name} dataset states no intensity rule for NIfTI/DICOM '
                                         'volumes, so they cannot be segmented with its models')

    # ---- splits ----------------------------------------------------------------------------------
    def assign_splits(self, has_foreground: Mapping[str, bool]) -> Dict[str, str]:
        """Case → split for the cases not pinned by ``CaseSource.split``."""
        if self.folds:
            fold_of = kfold_split(list(has_foreground), has_foreground, self.folds, self.seed)
            return {case: f'fold{fold}' for case, fold in fold_of.items()}
        return holdout_split(list(has_foreground), has_foreground, self.val_fraction, self.seed)

    def split_file(self, split_of: Mapping[str, str]) -> Any:
        """What ``OUT/splits.json`` holds: nnU-Net style fold lists, or split → cases."""
        if self.folds:
            fold_of = {c: int(s[4:]) for c, s in split_of.items() if s.startswith('fold')}
            return folds_as_splits(fold_of, self.folds)
        out: Dict[str, List[str]] = {}
        for case, split in sorted(split_of.items()):
            out.setdefault(split, []).append(case)
        return out


def find_release_dir(src: Path, marker: Callable[[Path], bool], what: str, max_depth: int = 4) -> Path:
    """The first folder at or below ``src`` (breadth-first, up to ``max_depth``) for which ``marker`` holds.

    Users unzip releases at different depths; never hard-code it.
    """
    src = Path(src)
    if not src.is_dir():
        raise MedSegError(src, f'--src is not a folder (expected {what})')
    level = [src]
    for _ in range(max_depth + 1):
        found = [d for d in level if marker(d)]
        if found:
            return sorted(found)[0]
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir() and not c.name.startswith('.'))
    raise MedSegError(src, f'no dataset found: expected {what}')


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every dataset takes."""
    parser.add_argument('--src', type=Path, required=True, help='folder holding the raw release (any depth)')
    parser.add_argument('--out', type=Path, required=True, help='output dataset root, e.g. data/<name>')
    parser.add_argument('--workers', type=int, default=None, help='processes (default: CPU count)')
    parser.add_argument('--overwrite', action='store_true', help='rebuild even if OUT is up to date')
    parser.add_argument('--seed', type=int, default=0, help='split seed (default 0)')
    parser.add_argument('--val-fraction', type=float, default=0.2, help='share of patients in val (default 0.2)')
    parser.add_argument('--folds', type=int, default=None,
                        help='K stratified patient folds written as splits fold0..fold{K-1} instead of train/val')
    parser.add_argument('--previews', type=int, default=4,
                        help='overlay PNGs of the slices with most foreground under OUT/previews (0: none)')


def build_converter(name: str, args: argparse.Namespace, extra: Sequence[str]) -> DatasetConverter:
    cls = CONVERTERS[name]
    options = {k: v for k, v in vars(args).items() if k in extra}
    return cls(seed=args.seed, val_fraction=args.val_fraction, folds=args.folds, **options)
