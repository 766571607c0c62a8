"""2.5D input: a slice and its neighbours of the same case as the image channels.

* :func:`neighbour_indices` is the rule: slice ``index + offset`` for each offset, clamped to the case's
  first and last slice (edges replicated: slice -1 of the first slice is the first slice).
* :func:`stack_slices` applies it to an in-memory ``(Z, H, W)`` or ``(Z, H, W, W_n)`` uint8 volume (what
  inference has); :class:`LoadSliceStack` applies it to the slice store, reading the neighbours' PNGs
  through ``manifest.csv`` (training and ``mim test``). Both give the same ``(H, W, channels)`` array.
* Channels = offsets × windows, offset-major: for offsets ``(-1, 0, 1)`` and a 3-window HemSeg PNG
  (brain, subdural, bone) channel ``3 * i + j`` is window ``j`` of slice ``index + offsets[i]``:
  ``[b-1, s-1, o-1, b0, s0, o0, b+1, s+1, o+1]``. ``windows=(0,)`` keeps only the brain window (3 channels).
  A grayscale PNG is one window.
* Multi-channel datasets (``prepare_dataset.py nnunet`` / ``msd``: ``dataset.json`` lists ``channels``) store
  channel ``c`` of a slice as ``images_<c:04d>/<stem>.png`` beside ``images/`` (channel 0); each slice then has
  those channels in place of windows: channels = offsets × image channels (× ``windows`` picks among them), and
  ``offsets=(0,)`` is the 1-slice input with every channel.
* :class:`BrightnessContrastDistortion`: mmseg's ``PhotoMetricDistortion`` without its HSV steps, for
  channels that are not colours (its hue/saturation would mix neighbouring slices or windows).
* :class:`LateralRandomFlip`: mmseg's ``RandomFlip`` that exchanges left/right label values when a flip
  mirrors the patient's left and right (the image columns), so datasets with lateral classes can train with flips.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets.transforms import PhotoMetricDistortion, RandomFlip
from mmseg.registry import TRANSFORMS

from ..errors import MedSegError
from ..laterality import LEFT_RIGHT_DIRECTIONS, swap_label_values
from ..manifest import MANIFEST_NAME, channel_folder, find_dataset_root, read_dataset_card, read_manifest

__all__ = ['BrightnessContrastDistortion', 'LateralRandomFlip', 'LoadSliceStack', 'neighbour_indices', 'stack_slices']


def _check_offsets(offsets: Sequence[int], who: str) -> Tuple[int, ...]:
    try:
        values = tuple(offsets)
    except TypeError:
        values = ()
    if not values or not all(isinstance(o, (int, np.integer)) and not isinstance(o, bool) for o in values):
        raise MedSegError(None, f'{who}: offsets must be a non-empty sequence of integers, got {offsets!r}')
    return tuple(int(o) for o in values)


def _check_windows(windows: Optional[Sequence[int]], who: str) -> Optional[Tuple[int, ...]]:
    if windows is None:
        return None
    try:
        values = tuple(windows)
    except TypeError:
        values = ()
    if not values or not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 0
                             for w in values):
        raise MedSegError(None, f'{who}: windows must be None (all) or a non-empty sequence of channel indices '
                                f'>= 0, got {windows!r}')
    return tuple(int(w) for w in values)


def neighbour_indices(index: int, offsets: Sequence[int], first: int, last: int) -> List[int]:
    """Slice ``index + o`` for each of ``offsets``, clamped to ``[first, last]`` (edges replicated)."""
    if not first <= index <= last:
        raise MedSegError(None, f'slice index {index} outside the case (slices {first}..{last})')
    return [min(max(index + o, first), last) for o in _check_offsets(offsets, 'neighbour_indices')]


def _select_windows(plane: np.ndarray, windows: Optional[Tuple[int, ...]], where) -> np.ndarray:
    """``(H, W, n)`` of one slice: its stored channels (a grayscale slice is one), or those in ``windows``."""
    planes = plane[:, :, None] if plane.ndim == 2 else plane
    if windows is None:
        return planes
    if max(windows) >= planes.shape[2]:
        raise MedSegError(where, f'windows={list(windows)} but the slice has {planes.shape[2]} channel(s) '
                                 f'(indices 0..{planes.shape[2] - 1})')
    return planes[:, :, list(windows)]


def stack_slices(volume: np.ndarray, index: int, offsets: Sequence[int] = (-1, 0, 1),
                 windows: Optional[Sequence[int]] = None) -> np.ndarray:
    """Slice ``index`` of ``volume`` and its neighbours as channels, as :class:`LoadSliceStack` stacks them.

    Args:
        volume: ``(Z, H, W)`` uint8 (one window) or ``(Z, H, W, n)`` (``n`` windows as channels), slices in
            display order as the slice store holds them (slice ``k`` = ``images/<case>_<k:04d>.png``).
        index: the centre slice, ``0 <= index < Z``.
        offsets: neighbours relative to ``index``, in channel order; clamped to ``[0, Z - 1]``.
        windows: channels of each slice to keep (``None``: all), in that order.

    Returns:
        ``(H, W, len(offsets) * n_windows)``, offset-major: channel ``i * n_windows + j`` is window ``j`` of
        slice ``clamp(index + offsets[i])``.
    """
    volume = np.asarray(volume)
    if volume.ndim not in (3, 4) or volume.dtype != np.uint8:
        raise MedSegError(None, f'stack_slices: expected a (Z, H, W) or (Z, H, W, n) uint8 volume, got '
                                f'{volume.dtype} {volume.shape}')
    windows = _check_windows(windows, 'stack_slices')
    picked = [_select_windows(volume[k], windows, None)
              for k in neighbour_indices(int(index), offsets, 0, volume.shape[0] - 1)]
    return np.ascontiguousarray(np.concatenate(picked, axis=2))


class _SliceIndex:
    """One prepared dataset's slices: stem → (case, index) and case → {index: image path}."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mtime = (root / MANIFEST_NAME).stat().st_mtime_ns
        #: the image channels of a multi-channel dataset (``dataset.json`` ``channels``): one PNG folder each
        self.channels = len(_card_channels(root)) or 1
        self.where: Dict[str, Tuple[str, int]] = {}
        self.cases: Dict[str, Dict[int, str]] = {}
        for r in read_manifest(root):
            self.where[Path(r.image).stem] = (r.case_id, r.slice_index)
            self.cases.setdefault(r.case_id, {})[r.slice_index] = str(root / r.image)

    def fresh(self) -> bool:
        try:
            return (self.root / MANIFEST_NAME).stat().st_mtime_ns == self.mtime
        except OSError:
            return False


def _card_channels(root: Path) -> List[str]:
    """The ``channels`` a prepared dataset's ``dataset.json`` lists (none: a one-channel or older dataset)."""
    try:
        card = read_dataset_card(root)
    except MedSegError:  # missing, unreadable or not a JSON object
        return []
    return list(card.get('channels') or [])


def read_slice_channels(path: str, channels: int) -> np.ndarray:
    """One slice of a dataset with ``channels`` image channels: ``images/<stem>.png`` (channel 0) and
    ``images_<XXXX>/<stem>.png`` beside it, as ``(H, W, channels)`` (a one-channel slice as stored)."""
    first = _read_png(path)
    if channels == 1:
        return first
    folder = Path(path).parent
    planes = [first] + [_read_png(str(folder.parent / channel_folder(c) / Path(path).name))
                        for c in range(1, channels)]
    if any(p.shape != first.shape for p in planes):
        raise MedSegError(path, f'its channel PNGs differ in shape: {[p.shape for p in planes]}')
    return np.ascontiguousarray(np.stack(planes, axis=2))


#: Dataset root → its index (per process: each dataloader worker builds its own once).
_INDEX: Dict[Path, _SliceIndex] = {}
#: Folder of a slice → its dataset root (saves walking up the tree for every sample).
_ROOTS: Dict[str, Path] = {}


def _slice_index(img_path: str) -> _SliceIndex:
    folder = os.path.dirname(os.path.abspath(img_path))
    root = _ROOTS.get(folder)
    if root is None:
        root = _ROOTS[folder] = find_dataset_root(img_path)
    index = _INDEX.get(root)
    if index is None or not index.fresh():  # a dataset prepared again under the same root
        index = _INDEX[root] = _SliceIndex(root)
    return index


def _read_png(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise MedSegError(path, 'cannot read this slice image (missing or not an image file)')
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise MedSegError(path, f'expected an 8-bit slice with 1 or more channels, got {image.dtype} {image.shape}')
    return image


@TRANSFORMS.register_module()
class LoadSliceStack(BaseTransform):
    """Load a slice and its neighbours of the same case as channels: 2.5D in place of ``LoadImageFromFile``.

    The neighbours of ``results['img_path']`` are found through the ``manifest.csv`` of its prepared dataset
    (the nearest folder above it holding one; read once per dataset root and process), so any ``offsets``
    work on a dataset prepared once. Slice ``k + o`` is clamped to the case's first and last slice in the
    manifest: edges are replicated (offset -1 of the first slice is the first slice again).

    Channels = offsets × windows, offset-major (see :func:`stack_slices`, which inference uses on a volume):
    a grayscale PNG gives ``len(offsets)`` channels; a HemSeg 3-window PNG (brain, subdural, bone)
    ``3 * len(offsets)``, channel ``3 * i + j`` = window ``j`` of slice ``k + offsets[i]``, or
    ``len(offsets) * len(windows)`` with ``windows`` (e.g. ``windows=(0,)``: brain only). The model's
    ``in_channels`` and the data preprocessor's ``mean``/``std`` (one value per channel, ``bgr_to_rgb=False``
    so the order is kept) must match that number.

    Required keys: ``img_path``. Added keys: ``img`` (uint8 ``(H, W, C)``), ``img_shape``, ``ori_shape`` (as
    ``LoadImageFromFile`` sets them), ``stack_indices`` (the slice index of each offset after clamping).

    Args:
        offsets: neighbours relative to the slice, in channel order (default ``(-1, 0, 1)``).
        windows: stored channels of each slice to keep, in that order (``None``: all).
    """

    def __init__(self, offsets: Sequence[int] = (-1, 0, 1), windows: Optional[Sequence[int]] = None) -> None:
        self.offsets = _check_offsets(offsets, 'LoadSliceStack')
        self.windows = _check_windows(windows, 'LoadSliceStack')

    def transform(self, results: dict) -> dict:
        img_path = str(results['img_path'])
        index = _slice_index(img_path)
        stem = Path(img_path).stem
        if stem not in index.where:
            raise MedSegError(img_path, f'slice {stem!r} is not listed in {index.root / MANIFEST_NAME}: its '
                                        'neighbours cannot be found (prepare the dataset again?)')
        case_id, k = index.where[stem]
        slices = index.cases[case_id]
        first, last = min(slices), max(slices)
        wanted = neighbour_indices(k, self.offsets, first, last)
        planes = []
        for offset, j in zip(self.offsets, wanted):
            if j not in slices:
                raise MedSegError(img_path, f'neighbour slice {j} (offset {offset:+d}) of case {case_id!r} is not '
                                            f'listed in {index.root / MANIFEST_NAME}')
            plane = read_slice_channels(img_path if j == k else slices[j], index.channels)
            if planes and plane.shape != planes[0].shape:
                raise MedSegError(slices[j], f'shape {plane.shape} differs from {planes[0].shape} of the other '
                                             f'slices stacked for {stem}')
            planes.append(plane)
        img = np.ascontiguousarray(np.concatenate([_select_windows(p, self.windows, img_path) for p in planes],
                                                  axis=2))
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results['stack_indices'] = tuple(wanted)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(offsets={self.offsets}, windows={self.windows})'


@TRANSFORMS.register_module()
class BrightnessContrastDistortion(PhotoMetricDistortion):
    """mmseg's ``PhotoMetricDistortion`` without the HSV steps: random brightness, then random contrast
    before or after (same ranges, probabilities and order), one affine map applied to every channel.

    For stacked slices or windows, whose channels are not colours. On a grayscale slice replicated to three
    channels the HSV steps of ``PhotoMetricDistortion`` change nothing, so a 2.5D config with this gets the
    same augmentation as the 1-channel config with ``PhotoMetricDistortion``.
    """

    def __init__(self, brightness_delta: int = 32, contrast_range: Sequence[float] = (0.5, 1.5)) -> None:
        super().__init__(brightness_delta=brightness_delta, contrast_range=contrast_range)

    def saturation(self, img: np.ndarray) -> np.ndarray:
        return img

    def hue(self, img: np.ndarray) -> np.ndarray:
        return img


@TRANSFORMS.register_module()
class LateralRandomFlip(RandomFlip):
    """mmseg's ``RandomFlip`` for datasets with left/right classes: a flip that mirrors the image columns
    (``'horizontal'``, and ``'diagonal'`` = both axes) exchanges the label values of each of ``swap_pairs``
    in the flipped masks, since in the slice convention (L, P, S) the columns run from the patient's right to
    left; a ``'vertical'`` flip (rows: anterior-posterior) keeps them. (mmcv's own ``swap_seg_labels`` swaps
    on every direction, vertical included.)

    Args:
        prob, direction: as ``RandomFlip``.
        swap_pairs: pairs of label values as the pipeline sees them (after the dataset's label map), e.g.
            ``((1, 2),)`` for ``left_lung`` / ``right_lung`` of the COVID-19-CT-Seg joint and lung models;
            the dataset's declared pairs by name are its metainfo's ``mirror_pairs``.
    """

    def __init__(self, prob=None, direction='horizontal', swap_pairs: Sequence[Sequence[int]] = ()) -> None:
        super().__init__(prob=prob, direction=direction)
        pairs, seen = [], set()
        for pair in swap_pairs:
            values = tuple(pair) if not isinstance(pair, (str, bytes)) else ()
            if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                                           for v in values) or values[0] == values[1] or seen & set(values):
                raise MedSegError(None, f'LateralRandomFlip: swap_pairs must be pairs of two different label values '
                                        f'>= 0, each value in one pair, got {swap_pairs!r}')
            seen.update(values)
            pairs.append((int(values[0]), int(values[1])))
        self.swap_pairs = tuple(pairs)

    def _flip_seg_map(self, seg_map: np.ndarray, direction: str) -> np.ndarray:
        flipped = super()._flip_seg_map(seg_map, direction)
        if direction in LEFT_RIGHT_DIRECTIONS and self.swap_pairs:
            flipped = swap_label_values(flipped, self.swap_pairs)
        return flipped

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, swap_pairs={self.swap_pairs})'
