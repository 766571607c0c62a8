"""Folders of 2D slices (JPG/PNG) read as one volume."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np

from ..errors import MedSegError
from ..volume import Volume

_NUMBER = re.compile(r'(\d+)')


def natural_key(path: Union[str, Path]) -> tuple:
    """Sort key that orders ``2.jpg`` before ``10.jpg``."""
    parts = _NUMBER.split(Path(path).name)
    return tuple(int(p) if p.isdigit() else p for p in parts)


def read_image_2d(path: Union[str, Path]) -> np.ndarray:
    """Read one 8-bit image as a single-channel (H, W) uint8 array."""
    array = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if array is None:
        raise MedSegError(path, 'cannot decode image (missing, truncated or not a JPG/PNG)')
    return array


def read_slice_files(files: Sequence[Union[str, Path]]) -> Volume:
    """Stack 2D images, in the given order, into a (Z, H, W) uint8 volume with unknown spacing."""
    if not files:
        raise MedSegError(None, 'no slice files given')
    slices = []
    for path in files:
        image = read_image_2d(path)
        if slices and image.shape != slices[0].shape:
            raise MedSegError(path, f'slice shape {image.shape} differs from {slices[0].shape} of {files[0]}')
        slices.append(image)
    return Volume(array=np.stack(slices), source=str(Path(files[0]).parent))


def read_slice_folder(folder: Union[str, Path], pattern: str = '*.png') -> Volume:
    """Read all files matching ``pattern`` in ``folder``, in natural order of their names."""
    files = sorted(Path(folder).glob(pattern), key=natural_key)
    if not files:
        raise MedSegError(folder, f'no files matching {pattern}')
    return read_slice_files(files)
