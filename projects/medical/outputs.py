"""Where a tool may write: never over, around or (where it would be read) inside its inputs.

Every tool that writes into a folder it is given, or replaces a folder, checks the output against the
inputs first with :func:`check_apart` (one rule, written once): an output equal to an input, an output that
contains an input, and an output inside an input where it would be read as input are refused with one
line naming both paths (:class:`~mmseg_medical.errors.UsageError`: the tools exit 2). Paths are compared
after resolving symbolic links, so ``data/raw/../raw`` and a link to the input are the input.

Used by ``tools/prepare_dataset.py --out`` / ``--nifti-out`` (against ``--src``), ``tools/infer_volume.py
--output`` (against ``--input``, ``--data``, ``--src``), ``tools/pseudo_label.py --out-split`` (its folder
``pseudo_masks/<name>`` against ``--data``) and ``tools/benchmark.py --work-dir`` (against ``--mosmed``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from .errors import UsageError

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
