"""Where a case's bytes come from: a file, a list of files, named files, or members of a zip archive.

A *source* is any of

* a path (``str`` / :class:`~pathlib.Path`);
* a list or tuple of sources (e.g. one JPG per slice; ``None`` entries allowed);
* a dict ``{name: source}`` (e.g. ``{'lung': ..., 'infection': ...}`` mask files of one case);
* a :class:`ZipMember` (a file inside a zip archive, read in place, never extracted);
* ``None`` (nothing).

:func:`source_items` flattens a source; :func:`fingerprint_lines` describes every byte source (file path,
size and mtime; archive path, size, mtime plus member name, size and CRC) for the up-to-date check.
"""
from __future__ import annotations

import functools
import gzip
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterator, List, Tuple, Union

from ..errors import MedSegError


@dataclass(frozen=True)
class ZipMember:
    """One file inside a zip archive (``member`` is its name in the archive, '/'-separated)."""

    archive: Path
    member: str

    def __str__(self) -> str:
        return f'{self.archive}:{self.member}'

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name


Source = Union[None, str, Path, ZipMember, List[Any], Tuple[Any, ...], Dict[str, Any]]
Item = Union[Path, ZipMember]


def source_items(source: Source) -> Iterator[Item]:
    """Every file or archive member a source reads, in order (dict values in key order)."""
    if source is None:
        return
    if isinstance(source, ZipMember):
        yield source
    elif isinstance(source, (str, Path)):
        yield Path(source)
    elif isinstance(source, dict):
        for key in sorted(source):
            yield from source_items(source[key])
    elif isinstance(source, (list, tuple)):
        for item in source:
            yield from source_items(item)
    else:
        raise TypeError(f'unsupported source {source!r}')


def _unsafe(name: str) -> bool:
    parts = PurePosixPath(name.replace('\\', '/'))
    return parts.is_absolute() or '..' in parts.parts or (len(name) > 1 and name[1] == ':')


@functools.lru_cache(maxsize=32)
def _zip_index(archive: Path, size: int, mtime_ns: int) -> Dict[str, Tuple[int, int]]:
    """member name → (uncompressed size, CRC) of a zip archive; refuses members that would escape."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise MedSegError(archive, f'cannot read zip archive ({type(exc).__name__}: {exc})') from None
    index = {}
    for info in infos:
        if _unsafe(info.filename):
            raise MedSegError(archive, f'zip member {info.filename!r} would escape the archive '
                                       '(absolute path or ..); refusing the archive')
        if not info.is_dir():
            index[info.filename] = (info.file_size, info.CRC)
    return index


def zip_index(archive: Union[str, Path]) -> Dict[str, Tuple[int, int]]:
    """The members of ``archive`` (cached per file version); every member name is checked for escapes."""
    archive = Path(archive).resolve()
    if not archive.is_file():
        raise MedSegError(archive, 'zip archive not found')
    st = archive.stat()
    return _zip_index(archive, st.st_size, st.st_mtime_ns)


def zip_members(archive: Union[str, Path], suffixes: Tuple[str, ...] = ('',)) -> List[ZipMember]:
    """The file members of ``archive`` whose names end with one of ``suffixes``, sorted by name."""
    archive = Path(archive).resolve()
    return [ZipMember(archive, name) for name in sorted(zip_index(archive)) if name.endswith(suffixes)]


def read_bytes(item: Item) -> bytes:
    """The bytes of a file or zip member (a ``.gz`` name is returned as stored, not decompressed)."""
    if isinstance(item, ZipMember):
        if item.member not in zip_index(item.archive):
            raise MedSegError(item.archive, f'zip member {item.member!r} not found')
        try:
            with zipfile.ZipFile(item.archive) as zf:
                return zf.read(item.member)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise MedSegError(item, f'cannot read zip member ({type(exc).__name__}: {exc})') from None
    path = Path(item)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MedSegError(path, f'cannot read file ({exc.strerror or exc})') from None


def gunzip_if_needed(item: Item, data: bytes) -> bytes:
    """Decompress ``data`` when ``item``'s name ends with ``.gz`` (errors name the item)."""
    if not str(item).endswith('.gz'):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise MedSegError(item, f'corrupt gzip data ({type(exc).__name__}: {exc})') from None


def item_exists(item: Item) -> bool:
    if isinstance(item, ZipMember):
        return item.member in zip_index(item.archive)
    return Path(item).is_file()


def fingerprint_lines(source: Source) -> Iterator[str]:
    """One line per byte source: path|size|mtime, and for zip members also member|size|crc."""
    for item in source_items(source):
        if isinstance(item, ZipMember):
            st = item.archive.stat()
            size, crc = zip_index(item.archive).get(item.member, (-1, -1))
            yield f'{item.archive.resolve()}|{st.st_size}|{st.st_mtime_ns}|{item.member}|{size}|{crc}'
        else:
            try:
                st = item.stat()
            except OSError:
                raise MedSegError(item, 'input file not found') from None
            yield f'{item.resolve()}|{st.st_size}|{st.st_mtime_ns}'
