"""Previews: overlay colours by hand, text sized to the image and inside it (read back from the drawn figure and
from the rendered pixels), and the prepare-time previews' legend in the dataset's own class colours."""
import json

import cv2
import numpy as np
import pytest

from mmseg_medical.visualization import (TEXT_FRACTION, overlay, preview_figure, render, side_by_side,
                                         write_previews)

PALETTE = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


def _square_mask(size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[size // 8:size // 2, size // 8:size // 2] = 1
    mask[5 * size // 8:7 * size // 8, size // 2:7 * size // 8] = 2
    return mask


def test_overlay_tints_and_outlines_each_class_in_its_colour():
    image = np.full((20, 20), 100, np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[2:10, 2:10] = 1
    mask[12:18, 12:18] = 2
    mask[0, 19] = 255  # ignore index: left as it is
    out = overlay(image, mask, alpha=0.45, colours=PALETTE)
    # by hand: 0.55 * 100 + 0.45 * colour inside, the colour itself on the outline, grey elsewhere
    assert out[5, 5].tolist() == [170, 55, 55]
    assert out[15, 15].tolist() == [55, 170, 55]
    assert out[2, 5].tolist() == [255, 0, 0] and out[12, 15].tolist() == [0, 255, 0]
    assert out[0, 0].tolist() == [100, 100, 100] and out[0, 19].tolist() == [100, 100, 100]


def _drawn(fig):
    """Every text of the figure (tile titles and legend) with its rendered extent in pixels."""
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts] + [t for leg in fig.legends for t in leg.get_texts()]
    return renderer, texts


@pytest.mark.parametrize('size', [256, 512])
def test_preview_text_is_sized_to_the_image_and_inside_it(size):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (size, size), dtype=np.uint8)
    fig = preview_figure(image, [('ground truth', _square_mask(size))],
                         classes=['background', 'hemorrhage', 'oedema'], palette=PALETTE)
    titles = [t for ax in fig.axes for t in ax.texts]
    assert [t.get_text() for t in titles] == ['image', 'ground truth']
    for t in titles:  # points → pixels at the figure's dpi: a fixed fraction of the tile height
        assert t.get_fontsize() * fig.dpi / 72 == pytest.approx(TEXT_FRACTION * size, rel=1e-6)
    renderer, texts = _drawn(fig)
    for t in titles:  # each title inside its own tile
        box, tile = t.get_window_extent(renderer), t.axes.get_window_extent(renderer)
        assert tile.x0 <= box.x0 and box.x1 <= tile.x1 and tile.y0 <= box.y0 and box.y1 <= tile.y1, t.get_text()
    for t in texts:
        box = t.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width and 0 <= box.y0 and box.y1 <= fig.bbox.height
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ['hemorrhage', 'oedema']
    assert [tuple(np.round(np.array(p.get_facecolor()[:3]) * 255)) for p in legend.get_patches()] == [
        (255, 0, 0), (0, 255, 0)]
    picture = render(fig)
    gap = picture.shape[1] - 2 * size
    assert picture.shape[0] > size and 2 <= gap <= 8  # two tiles pixel for pixel, the legend under them
    untouched = picture[size // 2:size, :size]  # the plain tile, below its title, is the slice pixel for pixel
    assert np.array_equal(untouched, np.repeat(image[size // 2:, :, None], 3, axis=2))


def test_long_titles_and_names_are_fitted_into_a_narrow_picture():
    image = np.full((300, 40), 90, np.uint8)
    mask = np.zeros_like(image)
    mask[20:60, 5:30] = 1
    mask[100:140, 5:30] = 2
    classes = ['background', 'a very long structure name indeed', 'another long structure name']
    fig = preview_figure(image, [('a long title for a narrow tile', mask)], classes=classes, palette=PALETTE)
    renderer, texts = _drawn(fig)
    assert len(texts) == 4
    for t in texts:
        box = t.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width and 0 <= box.y0 and box.y1 <= fig.bbox.height, t.get_text()
    picture = render(fig)
    band = picture[300 * 7:]  # 40 px upscaled 7× to reach 256 wide; the legend below the tiles
    assert (band[:, -1] == 255).all() and (band[:, 0] == 255).all()  # no text cut at the picture's edges
    assert (band < 100).all(axis=2).sum() > 50  # the names are drawn (dark pixels on white)


def test_side_by_side_without_classes_names_the_values_it_shows():
    image = np.full((64, 64), 80, np.uint8)
    fig = preview_figure(image, [('truth', _square_mask(64)), ('prediction', _square_mask(64) * 0)])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ['class 1', 'class 2']
    bgr = side_by_side(image, [('truth', _square_mask(64))])
    assert bgr.shape[1] == 2 * 256 + 2 and bgr.dtype == np.uint8


def test_prepare_writes_previews_with_the_dataset_classes_and_colours(tmp_path):
    """A prepared COVID-19-CT-Seg folder (all masks: six classes): each class of dataset.json is in the legend, in
    the colour the registered Covid19Dataset gives that class name (the two it does not name: colours of their
    own); the lungs in the overlay are tinted with those same colours."""
    from mmseg_medical.conversion import CONVERTERS, prepare
    from mmseg_medical.datasets.covid19 import Covid19Dataset
    from mmseg_medical.manifest import read_manifest
    from mmseg_medical.synthetic.covid19 import write_covid19_release

    write_covid19_release(tmp_path / 'raw')
    out = tmp_path / 'out'
    prepare(CONVERTERS['covid19'](), tmp_path / 'raw', out, workers=1, previews=2)
    classes = json.loads((out / 'dataset.json').read_text())['classes']
    assert classes[1:4] == ['left_lung', 'right_lung', 'infection'] and len(classes) == 6
    registered = dict(zip(Covid19Dataset.METAINFO['classes'], Covid19Dataset.METAINFO['palette']))
    previews = sorted((out / 'previews').glob('*.png'))
    assert len(previews) == 2
    rows = {r.stem: r for r in read_manifest(out)}
    for path in previews:
        picture = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        row = rows[path.stem]
        image = cv2.imread(str(out / row.image), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(out / row.mask), cv2.IMREAD_UNCHANGED)
        factor = 256 // image.shape[1]
        tile = image.shape[0] * factor
        band = picture[tile:]
        swatch = (factor * image.shape[0] * TEXT_FRACTION) ** 2 / 4  # a legend square is about one font high
        counts = {}
        for colour, n in zip(*np.unique(band.reshape(-1, 3), axis=0, return_counts=True)):
            counts[tuple(int(v) for v in colour)] = int(n)
        for name in ('left_lung', 'right_lung', 'infection'):
            assert counts.get(tuple(registered[name]), 0) >= swatch, name
        own = [c for c, n in counts.items() if n >= swatch and len(set(c)) > 1
               and c not in {tuple(v) for v in registered.values()}]
        assert len(own) == 2  # infection_left_lung, infection_right_lung: colours of their own, not grey
        # swatches in legend order (matplotlib fills the columns top-down, left to right): the class order
        corners = {}
        for c in [tuple(registered[n]) for n in ('left_lung', 'right_lung', 'infection')] + own:
            ys, xs = np.nonzero(np.all(band == c, axis=2))
            corners[c] = (int(xs.min()), int(ys.min()))
        order = sorted(corners, key=lambda c: corners[c])
        assert order[:3] == [tuple(registered[n]) for n in ('left_lung', 'right_lung', 'infection')]
        x0 = picture.shape[1] - image.shape[1] * factor  # the mask tile, last
        for value, name in ((1, 'left_lung'), (2, 'right_lung')):
            inner = cv2.erode((mask == value).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            ys, xs = np.nonzero(inner)
            assert len(ys), name
            y, x = ys[len(ys) // 2], xs[len(xs) // 2]
            expected = np.rint(0.55 * float(image[y, x]) + 0.45 * np.array(registered[name], float))
            assert picture[y * factor, x0 + x * factor].tolist() == expected.tolist(), name


def test_write_previews_takes_explicit_classes(tmp_path):
    """Without dataset.json: the classes and colours given."""
    from dataclasses import dataclass

    @dataclass
    class Rec:
        case_id: str
        slice_index: int
        image: str
        mask: str
        stem: str

    @dataclass
    class Res:
        case_id: str
        labelled: bool
        slice_pixels: list

    cv2.imwrite(str(tmp_path / 'a.png'), np.full((32, 32), 120, np.uint8))
    cv2.imwrite(str(tmp_path / 'a_mask.png'), _square_mask(32))
    palette = [[0, 0, 0], [10, 20, 250], [250, 20, 10]]
    written = write_previews(tmp_path, [Rec('c', 0, 'a.png', 'a_mask.png', 'c_0000')], [Res('c', True, [10])], 1,
                             classes=['background', 'tumour', 'node'], palette=palette)
    picture = cv2.cvtColor(cv2.imread(str(written[0])), cv2.COLOR_BGR2RGB)
    band = picture[256:]
    for colour in ([10, 20, 250], [250, 20, 10]):
        assert np.all(band == colour, axis=2).sum() > 20
