"""Pictures people would rather look at: slices with their masks overlaid, side by side, with a class legend.

:func:`preview_figure` lays the tiles out pixel for pixel in a matplotlib ``Figure`` (the plain slice, then one
overlay per mask), writes each tile's title in its top-left corner with a font sized to the tile (a fixed
fraction of its height, shrunk until it fits the tile's width) and puts a legend under the tiles: a swatch and
the name of every foreground class, in the dataset's colours (its registered mmseg dataset's ``palette``, by
class name). :func:`side_by_side` renders that figure to an array; :func:`write_previews` writes the
prepare-time previews with the classes of the prepared folder's ``dataset.json``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

RGB = Tuple[int, int, int]
#: RGB colour per class index for classes the dataset gives no colour (index 0, background, is never drawn).
DEFAULT_PALETTE: Tuple[RGB, ...] = ((0, 0, 0), (255, 0, 0), (0, 200, 0), (0, 128, 255), (255, 0, 255),
                                    (0, 255, 255), (255, 160, 0), (160, 80, 255), (255, 255, 0), (0, 255, 128))
#: mmseg's ignore index: pixels with this value are left untinted and get no legend entry.
IGNORE_INDEX = 255
#: Tile titles and legend text: font height (pixels) as a fraction of a tile's height, and the smallest size.
TEXT_FRACTION = 0.06
MIN_TEXT_PX = 9.0


def class_colours(classes: Sequence[str], palette: Optional[Sequence[Sequence[int]]] = None,
                  count: Optional[int] = None) -> List[RGB]:
    """RGB per class index: ``palette[i]`` where given, else a :data:`DEFAULT_PALETTE` colour not used yet."""
    n = max(len(classes), count or 0, len(palette or ()))
    given = [tuple(int(v) for v in c) for c in (palette or ())]
    spare = [c for c in DEFAULT_PALETTE[1:] if c not in given]
    out: List[RGB] = []
    for i in range(n):
        if i < len(given):
            out.append(given[i])  # type: ignore[arg-type]
        elif i == 0:
            out.append(DEFAULT_PALETTE[0])
        else:
            out.append(spare.pop(0) if spare else DEFAULT_PALETTE[1 + (i - 1) % (len(DEFAULT_PALETTE) - 1)])
    return out


def overlay(image: np.ndarray, mask: Optional[np.ndarray], alpha: float = 0.45,
            colours: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """Grey ``image`` (H, W) as RGB with each class ``c > 0`` of ``mask`` tinted ``colours[c]`` (RGB; default
    :data:`DEFAULT_PALETTE`) and outlined in it; :data:`IGNORE_INDEX` pixels stay as they are."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    if mask is None:
        return rgb
    values = [int(c) for c in np.unique(mask) if c != 0 and c != IGNORE_INDEX]
    colours = class_colours([], colours, count=max(values, default=0) + 1)
    out = rgb.astype(np.float32)
    for c in values:
        region = mask == c
        out[region] = (1 - alpha) * out[region] + alpha * np.array(colours[c], np.float32)
    out = np.rint(out).astype(np.uint8)
    for c in values:
        contours, _ = cv2.findContours((mask == c).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(v) for v in colours[c]), 1)
    return out


def legend_entries(masks: Sequence[Optional[np.ndarray]], classes: Optional[Sequence[str]] = None,
                   palette: Optional[Sequence[Sequence[int]]] = None) -> List[Tuple[str, RGB]]:
    """(name, RGB) of every foreground class of ``classes`` (those named), else of every value in ``masks``
    (``class k``)."""
    present = sorted({int(v) for m in masks if m is not None for v in np.unique(m)} - {0, IGNORE_INDEX})
    names = list(classes) if classes else []
    count = max(len(names), max(present, default=0) + 1)
    colours = class_colours(names, palette, count=count)
    indices = range(1, len(names)) if names else present
    extra = [v for v in present if v >= len(names)] if names else []
    return [(names[i] if i < len(names) else f'class {i}', colours[i]) for i in [*indices, *extra]]


def _build(tiles: Sequence[Tuple[str, np.ndarray]], gap: int, label_px: Sequence[float],
           entries: Sequence[Tuple[str, RGB]], ncol: int, legend_px: float, dpi: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    tile_h, tile_w = tiles[0][1].shape[:2]
    rows = math.ceil(len(entries) / ncol) if entries else 0
    band = int(math.ceil(rows * 1.6 * legend_px + 0.8 * legend_px)) if rows else 0
    width, height = len(tiles) * tile_w + (len(tiles) - 1) * gap, tile_h + band
    # +0.01 px: the canvas takes int(figsize * dpi), which float rounding could make one pixel short
    fig = Figure(figsize=((width + 0.01) / dpi, (height + 0.01) / dpi), dpi=dpi, facecolor='white')
    FigureCanvasAgg(fig)
    texts = []
    for i, ((title, tile), px) in enumerate(zip(tiles, label_px)):
        ax = fig.add_axes((i * (tile_w + gap) / width, band / height, tile_w / width, tile_h / height))
        ax.imshow(tile, interpolation='nearest', aspect='auto')
        ax.set_axis_off()
        pad = 0.4 * px
        texts.append(ax.text(pad / tile_w, 1 - pad / tile_h, title, transform=ax.transAxes, ha='left', va='top',
                             color='white', fontsize=px * 72 / dpi,
                             bbox=dict(facecolor='black', alpha=0.55, edgecolor='none', pad=0.15 * px * 72 / dpi)))
    legend = None
    if entries:
        handles = [Patch(facecolor=np.array(c) / 255, edgecolor='#333333', label=name) for name, c in entries]
        legend = fig.legend(handles=handles, loc='center', bbox_to_anchor=(0.5, band / 2 / height), ncol=ncol,
                            fontsize=legend_px * 72 / dpi, frameon=False, handlelength=1.0, handleheight=1.0,
                            handletextpad=0.4, columnspacing=1.2, borderaxespad=0.0, borderpad=0.2)
    fig.canvas.draw()
    return fig, texts, legend


def _extent(text, renderer):
    box = text.get_window_extent(renderer)
    patch = text.get_bbox_patch()
    return box if patch is None else type(box).union([box, patch.get_window_extent(renderer)])


def preview_figure(image: np.ndarray, panels: Sequence[tuple], classes: Optional[Sequence[str]] = None,
                   palette: Optional[Sequence[Sequence[int]]] = None, min_width: int = 256, dpi: float = 100.0,
                   image_title: str = 'image', legend: bool = True):
    """``image`` plain, then one overlay per ``(title, mask)``, side by side in a matplotlib ``Figure`` whose
    canvas is the picture pixel for pixel (tiles upscaled by a whole factor so that they are at least
    ``min_width`` wide), and under them a legend of the classes (``classes`` with ``palette`` in RGB, as an mmseg
    dataset's ``METAINFO``; without ``classes``: ``class k`` for each value in the masks). Titles and legend text
    are :data:`TEXT_FRACTION` of the tile height high, smaller where that would not fit the tile's or the
    picture's width. ``image_title`` titles the plain tile; ``legend=False`` leaves the legend out."""
    masks = [m for _, m in panels]
    entries = legend_entries(masks, classes, palette) if legend else []
    colours = class_colours(list(classes or ()), palette,
                            count=max([int(m.max()) + 1 for m in masks if m is not None and m.size] + [1]))
    factor = max(1, int(np.ceil(min_width / image.shape[1])))
    raw = [(image_title, overlay(image, None))] + [(t, overlay(image, m, colours=colours)) for t, m in panels]
    tiles = [(t, cv2.resize(r, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST) if factor > 1 else r)
             for t, r in raw]
    tile_h, tile_w = tiles[0][1].shape[:2]
    gap = max(2, tile_w // 128)
    size = max(MIN_TEXT_PX, TEXT_FRACTION * tile_h)
    label_px, legend_px, ncol = [size] * len(tiles), size, max(1, len(entries))
    for _ in range(12):
        fig, texts, legend = _build(tiles, gap, label_px, entries, ncol, legend_px, dpi)
        renderer = fig.canvas.get_renderer()
        fits = True
        band = fig.bbox.height - tile_h
        for i, text in enumerate(texts):
            box, left = _extent(text, renderer), i * (tile_w + gap)
            if box.x1 > left + tile_w or box.y0 < band:
                room = left + tile_w - box.x0 - 0.3 * label_px[i]
                label_px[i] *= 0.95 * min(room / max(box.width, 1.0), (tile_h - 0.6 * label_px[i]) / box.height)
                fits = False
        label_px = [min(label_px)] * len(label_px)  # one size for all titles
        if legend is not None:
            box = legend.get_window_extent(renderer)
            room = fig.bbox.width - 2 * gap
            if box.width > room:
                fits = False
                if ncol > 1:
                    ncol = max(1, min(ncol - 1, int(ncol * room / box.width)))
                else:
                    legend_px *= 0.95 * room / box.width
        if fits:
            return fig
    return fig


def render(fig) -> np.ndarray:
    """The figure's canvas as an RGB array (H, W, 3), one element per pixel of the picture."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def side_by_side(image: np.ndarray, panels: Sequence[tuple], min_width: int = 256,
                 classes: Optional[Sequence[str]] = None,
                 palette: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """:func:`preview_figure` as a BGR array, ready for ``cv2.imwrite``."""
    return cv2.cvtColor(render(preview_figure(image, panels, classes, palette, min_width)), cv2.COLOR_RGB2BGR)


def dataset_classes(root: Path) -> Tuple[List[str], Optional[List[RGB]]]:
    """The classes of a prepared folder (its ``dataset.json``) and their colours: the palette of the mmseg dataset
    registered for it, class by class by name (classes it does not name: ``None`` there, a default colour)."""
    from .manifest import read_dataset_card

    card = read_dataset_card(root)
    classes = [str(c) for c in card.get('classes') or ()]
    by_name = registered_palette(str(card.get('name', '')))
    if not by_name:
        return classes, None
    spare = class_colours(classes, None)
    return classes, [by_name.get(name, spare[i]) for i, name in enumerate(classes)]


def registered_palette(converter_name: str) -> Dict[str, RGB]:
    """class name → RGB of the mmseg dataset type that ``prepare_dataset.py converter_name`` feeds (its
    ``METAINFO``), or empty without mmseg or such a dataset."""
    try:
        from mmseg.registry import DATASETS

        from . import datasets  # noqa: F401  (registers them)
        from .conversion import CONVERTERS
    except ImportError:
        return {}
    converter = CONVERTERS.get(converter_name)
    types = () if converter is None else [t for t in (converter.dataset_type, *converter.dataset_types) if t]
    palette: Dict[str, RGB] = {}
    for dataset in (DATASETS.get(t) for t in types):   # every edition's names (crossMoDA 2023: four classes)
        meta = getattr(dataset, 'METAINFO', None) or {}
        for n, c in zip(meta.get('classes') or (), meta.get('palette') or ()):
            palette.setdefault(str(n), tuple(int(v) for v in c))
    return palette


def write_previews(root: Path, records, results, count: int, classes: Optional[Sequence[str]] = None,
                   palette: Optional[Sequence[Sequence[int]]] = None) -> List[Path]:
    """``root/previews/<slice>.png`` for the ``count`` labelled slices with the most foreground (one per case
    first): the slice and its mask overlaid, with a legend of the classes (default: :func:`dataset_classes`)."""
    if classes is None and (Path(root) / 'dataset.json').is_file():
        classes, palette = dataset_classes(root)
    pixels = {r.case_id: r.slice_pixels for r in results if r.labelled}
    ranked = sorted((rec for rec in records if rec.mask),
                    key=lambda rec: (-pixels[rec.case_id][rec.slice_index], rec.case_id, rec.slice_index))
    chosen, seen_cases = [], set()
    for rec in ranked:  # one slice per case first, for variety
        if rec.case_id not in seen_cases and len(chosen) < count:
            chosen.append(rec)
            seen_cases.add(rec.case_id)
    (root / 'previews').mkdir(exist_ok=True)
    written = []
    for rec in chosen:
        image = cv2.imread(str(root / rec.image), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(root / rec.mask), cv2.IMREAD_UNCHANGED)
        path = root / 'previews' / f'{rec.stem}.png'
        cv2.imwrite(str(path), side_by_side(image, [('mask', mask)], classes=classes, palette=palette))
        written.append(path)
    return written
