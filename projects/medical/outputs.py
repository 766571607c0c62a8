"""Where a tool may write: never over, around or (where it would be read) inside its inputs.

Every tool that writes into a folder it is given, or replaces a folder, checks the output against the
inputs first with :func:`check_apart` (one rule, written once): an output equal to an input, an output that
contains an input, and an output inside an input where it would be read as input are refused with one
line naming both paths (:class:`~mmseg_medical.errors.UsageError`: the tools exit 2). Paths are compared
after resolving symbolic links, so ``data/raw/../raw`` and a link to the input are the input.

Used by ``tools/prepare_dataset.py --out`` / ``--nifti-out`` (against ``--src``), ``tools/infer_volume.py
--output`` (against ``--input``, ``--data``, ``--src``), ``tools/pseudo_label.py --out-split`` (its folder
``pseudo_masks/<name>`` against ``--data``) and ``tools/benchmark.py --work-dir`` (against ``--mosmed``).
``tools/report.py`` replaces no folder (it writes ``DIR/report.html`` only, through a temporary file).

A folder shared with other files: ``infer_volume`` adds its predictions to ``--output`` and deletes nothing
there; it lists the files of its run in ``infer_volume.json`` (:data:`PREDICTION_LISTING`), names every other
file in one warning, and ``evaluate_volumes`` scores only the listed prediction files (a folder without a
listing, e.g. one written by another tool, is scored whole).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence, Set, Union

from .errors import MedSegError, UsageError

PathLike = Union[str, os.PathLike]


def always_read(input_dir: Path, inside: Path) -> bool:
    """The default rule: anything below an input folder is read as input (a raw release is searched whole)."""
    return True


def _resolved(path: PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def check_apart(out: PathLike, out_option: str, inputs: Mapping[str, Optional[PathLike]],
                read_inside: Callable[[Path, Path], bool] = always_read) -> None:
    """Raise :class:`UsageError` when ``out`` (given as ``out_option``) is one of ``inputs`` (option → path;
    ``None`` entries are skipped), contains one, or lies inside one where ``read_inside(input, out)`` (both
    resolved) says that it would be read as input."""
    target = _resolved(out)
    for option, given in inputs.items():
        if given is None:
            continue
        source = _resolved(given)
        if target == source:
            why = f'is {option} {given}'
        elif target in source.parents:
            why = f'contains {option} {given}'
        elif source in target.parents and read_inside(source, target):
            why = f'lies inside {option} {given}, where it would be read as input'
        else:
            continue
        raise UsageError(None, f'{out_option} {out} {why}; choose an output apart from the input (nothing was '
                               'written)')


# ---- the files a tool wrote into a shared folder ---------------------------------------------------------------
#: ``infer_volume``'s listing of the files its last run wrote into the output folder (a JSON object with
#: ``files``): ``evaluate_volumes`` scores only the prediction files listed there.
PREDICTION_LISTING = 'infer_volume.json'


def write_listing(folder: Path, names: Sequence[str]) -> Path:
    """Write ``folder/infer_volume.json`` naming ``names`` (the files of one run, in that folder)."""
    path = Path(folder) / PREDICTION_LISTING
    path.write_text(json.dumps({'written_by': 'tools/infer_volume.py', 'files': sorted(names)}, indent=1) + '\n')
    return path


def listed_files(folder: Path) -> Optional[Set[str]]:
    """The file names ``folder/infer_volume.json`` lists; ``None`` when the folder has no listing (a folder of
    predictions written by anything else: every file counts)."""
    path = Path(folder) / PREDICTION_LISTING
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        files = info['files']
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ValueError('"files" must be a list of file names')
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MedSegError(path, f'cannot read the listing of the files infer_volume wrote ({type(exc).__name__}: '
                                f'{exc}); write the predictions again or remove it') from None
    return set(files)


def unlisted_entries(folder: Path) -> List[str]:
    """Names in ``folder`` that its listing does not name (hidden entries and the listing itself left out)."""
    listed = listed_files(folder) or set()
    return sorted(p.name for p in Path(folder).iterdir()
                  if not p.name.startswith('.') and p.name != PREDICTION_LISTING and p.name not in listed)
