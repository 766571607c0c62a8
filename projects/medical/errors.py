"""One exception type for every bad input the extension can meet."""
from __future__ import annotations

from os import PathLike
from typing import Union


class MedSegError(Exception):
    """A problem with one input file or folder.

    The message always reads ``<path>: <problem>`` so that command-line tools can print it as a single
    line and exit non-zero.
    """

    def __init__(self, path: Union[str, PathLike, None], problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = ' '.join(str(problem).split())  # always one line, whatever a library said
        super().__init__(path, problem)

    def __str__(self) -> str:
        return self.problem if self.path is None else f'{self.path}: {self.problem}'


class UsageError(MedSegError):
    """A bad combination of options (e.g. an output folder that holds the input): command-line tools exit 2."""
