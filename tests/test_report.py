"""The test report (``tools/report.py DIR``, ``ReportHook``) checked as a person sees it: opened in headless
Chromium (:mod:`browser`), its rows, values, sorting and pictures read back from the page, against numbers
recomputed here from the files (``metrics.csv``, the prepared dataset's split list, masks and label files).

Without Chromium the browser tests skip with the reason on a developer's machine and fail on CI (``CI`` set).
``REPORT_SCREENSHOT=docs/report_screenshot.png`` makes the Cranium run's test also refresh the README's picture.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

import mmseg_medical  # noqa: F401
from mmseg_medical.conversion import CONVERTERS, prepare
from mmseg_medical.errors import MedSegError
from mmseg_medical.manifest import group_by_case, read_case_geometry, read_manifest, restack
from mmseg_medical.report import main as report_main
from mmseg_medical.report import prediction_on_slices
from mmseg_medical.restacking import to_source_grid
from mmseg_medical.runs import last_checkpoint, mim_test, mim_train, run, tiny_overrides
from mmseg_medical.synthetic import write_cranium_release
from mmseg_medical.volume import save_nifti

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
SCREENSHOT_LIMIT = 300 * 1024
ITERS = 100  # training iterations of the shrunk Cranium run (README: 'Test report')


def _load_browser():
    spec = importlib.util.spec_from_file_location('report_browser', Path(__file__).with_name('browser.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


browser = _load_browser()


@pytest.fixture
def chrome():
    with browser.Chromium(browser.chromium_or_skip()) as c:
        yield c


# ---- reading the page and the files -------------------------------------------------------------------------------
ROWS_JS = """Array.from(document.querySelectorAll('#cases tbody tr')).map(r => ({
  case: r.getAttribute('data-case'),
  cells: Array.from(r.cells).map(c => [c.textContent, c.getAttribute('data-value')])}))"""
HEAD_JS = """Array.from(document.querySelectorAll('#cases th[data-metric]')).map(h =>
  [h.getAttribute('data-class'), h.getAttribute('data-metric'), parseInt(h.getAttribute('data-col'), 10)])"""
IMAGES_JS = """Promise.all(Array.from(document.images).map(i => i.decode().then(() => [i.alt, i.naturalWidth,
  i.naturalHeight], () => [i.alt, 0, 0])))"""


def read_metrics(path: Path):
    """metrics.csv as ``{case: {class: {metric: text}}}`` and its metric columns."""
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        metrics = reader.fieldnames[2:-1]
        rows = {}
        for r in reader:
            rows.setdefault(r['case'], {})[int(r['class'])] = {m: r[m] for m in metrics} | {'empty': r['empty']}
    return rows, metrics


def shown(metric: str, value: float) -> str:
    """What a cell should read: fractions with 4 decimals, distances (mm, voxels) with 2."""
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return 'inf'
    return f'{value:.4f}' if metric in ('dice', 'iou', 'nsd') else f'{value:.2f}'


def check_table(chrome, rows: dict, metrics, class_names) -> list:
    """The page's table holds exactly the CSV's values (text as shown, data-value at full precision); returns the
    page's case order."""
    page = chrome.evaluate(ROWS_JS)
    heads = chrome.evaluate(HEAD_JS)
    classes = sorted(next(iter(rows.values())))
    assert [(h[0], h[1]) for h in heads] == [(class_names[c], m) for c in classes for m in [*metrics, 'empty']]
    assert sorted(r['case'] for r in page) == sorted(rows)
    column = {(h[0], h[1]): h[2] for h in heads}
    for r in page:
        assert r['cells'][0][0] == r['case']
        for c in classes:
            for m in metrics:
                text, value = r['cells'][column[(class_names[c], m)]]
                expected = float(rows[r['case']][c][m])
                assert text == shown(m, expected), (r['case'], c, m)
                assert float(value) == expected or (math.isnan(expected) and math.isnan(float(value)))
            assert r['cells'][column[(class_names[c], 'empty')]][0] == (rows[r['case']][c]['empty'] or '–')
    return [r['case'] for r in page]


def dice_order(rows: dict, cls: int, descending: bool = False) -> list:
    """Cases by Dice of one class as the page sorts them: NaN last, ties by case id."""
    def key(case):
        v = float(rows[case][cls]['dice'])
        return (math.isnan(v), 0 if math.isnan(v) else (-v if descending else v), case)
    return sorted(rows, key=key)


def check_page_basics(chrome, page: Path) -> dict:
    """Loads without console errors, requests nothing but itself and embedded data, every picture decodes."""
    chrome.open(page)
    assert chrome.errors() == []
    requests = chrome.requests()
    assert requests[0] == page.resolve().as_uri()
    assert all(url.startswith('data:image/png;base64,') for url in requests[1:]), requests
    images = chrome.evaluate(IMAGES_JS)
    assert images and all(w > 0 and h > 0 for _, w, h in images), images
    return {alt: (w, h) for alt, w, h in images}


def dice_column(chrome, class_name: str) -> list:
    """``(case, Dice)`` of each row in the page's order, Dice read from the cell's data-value (full precision)."""
    head = f'#cases th[data-metric="dice"][data-class="{class_name}"]'
    col = chrome.evaluate(f'parseInt(document.querySelector({json.dumps(head)}).getAttribute("data-col"), 10)')
    return [(r['case'], float(r['cells'][col][1])) for r in chrome.evaluate(ROWS_JS)]


def check_sorting(chrome, rows: dict, cls: int, class_name: str) -> tuple:
    """A mouse click on the class's Dice header sorts ascending, a second one descending (order read back, and
    the Dice of each row read back from the page equal to metrics.csv's and in order); returns the orders before
    and after the first click."""
    selector = f'#cases th[data-metric="dice"][data-class="{class_name}"]'
    before = [r['case'] for r in chrome.evaluate(ROWS_JS)]

    def sorted_by_dice(descending):
        shown_rows = dice_column(chrome, class_name)
        for case, value in shown_rows:
            expected = float(rows[case][cls]['dice'])
            assert value == expected or (math.isnan(value) and math.isnan(expected)), (case, value, expected)
        values = [v for _, v in shown_rows if not math.isnan(v)]
        assert values == sorted(values, reverse=descending), shown_rows
        assert all(math.isnan(v) for _, v in shown_rows[len(values):]), shown_rows  # NaN last
        return [case for case, _ in shown_rows]

    chrome.click(selector)
    after = sorted_by_dice(descending=False)
    assert after == dice_order(rows, cls)
    assert chrome.evaluate(f'document.querySelector({json.dumps(selector)}).getAttribute("aria-sort")') == 'ascending'
    chrome.click(selector)
    assert sorted_by_dice(descending=True) == dice_order(rows, cls, descending=True)
    assert chrome.errors() == []
    return before, after


def png_size(path: Path):
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    return struct.unpack('>II', data[16:24])


def run_facts(chrome) -> dict:
    """The page's run section: ``{label: text}``."""
    return dict(chrome.evaluate("Array.from(document.querySelectorAll('dl.run dt')).map(d => "
                                "[d.textContent, d.nextElementSibling.textContent])"))


def _captions(chrome) -> list:
    return chrome.evaluate("Array.from(document.querySelectorAll('figcaption')).map(f => f.textContent)")


# ---- volume → slices ------------------------------------------------------------------------------------------------
def _source_label(root: Path, case: str) -> np.ndarray:
    """labels/<case>.nii.gz as (Z, H, W), read with nibabel."""
    return np.asanyarray(nib.load(str(root / 'labels' / f'{case}.nii.gz')).dataobj).transpose(2, 1, 0)


def _masks(root: Path, rows) -> np.ndarray:
    return np.stack([cv2.imread(str(root / r.mask), cv2.IMREAD_UNCHANGED) for r in rows])


def _sitk_display(path: Path):
    """A raw label file as SimpleITK puts it in L,P,S (``DICOMOrient``): array (Z, H, W) with rows running
    anterior to posterior and columns right to left, the display convention, and the image."""
    import SimpleITK as sitk
    image = sitk.DICOMOrient(sitk.ReadImage(str(path)), 'LPS')
    return sitk.GetArrayFromImage(image), image


def _centre_crop(array: np.ndarray, n: int) -> np.ndarray:
    """(Z, H, W) → (Z, n, n): the centred window at offset (H - n) // 2, (W - n) // 2, zero where it leaves."""
    z, h, w = array.shape
    out = np.zeros((z, n, n), array.dtype)
    dy, dx = (h - n) // 2, (w - n) // 2
    ys, xs = slice(max(dy, 0), min(dy + n, h)), slice(max(dx, 0), min(dx + n, w))
    out[:, ys.start - dy:ys.stop - dy, xs.start - dx:xs.stop - dx] = array[:, ys, xs]
    return out


def test_source_label_maps_onto_the_prepared_masks(cranium_data):
    """Each case's source-grid label (labels/<case>.nii.gz) mapped onto the slices equals the mask PNGs prepare
    wrote and SimpleITK's L,P,S reading of the release's own mask file, and maps back to itself."""
    for case, rows in group_by_case(r for r in read_manifest(cranium_data) if r.mask).items():
        geometry = read_case_geometry(cranium_data, case)
        on_slices = prediction_on_slices(cranium_data / 'labels' / f'{case}.nii.gz', geometry)
        np.testing.assert_array_equal(on_slices, _masks(cranium_data, rows))
        raw_mask = next((cranium_data.parent / 'raw').rglob(f'masks/{case}.nii'))
        np.testing.assert_array_equal(on_slices, _sitk_display(raw_mask)[0])
        np.testing.assert_array_equal(to_source_grid(on_slices, geometry).array, _source_label(cranium_data, case))


def test_source_label_maps_onto_resampled_and_cropped_masks(tmp_path):
    """Also through prepare's in-plane resampling and centre crop (CrossMoDA --spacing --crop)."""
    from mmseg_medical.synthetic.crossmoda import write_crossmoda_release

    raw = write_crossmoda_release(tmp_path / 'raw', naming='2022', num_source=2, num_target=1, num_val=0, size=40,
                                  num_slices=4)
    out = tmp_path / 'prepared'
    prepare(CONVERTERS['crossmoda'](spacing=3.5, crop=40, val_fraction=0.5), raw, out, workers=1, previews=0)
    cases = group_by_case(r for r in read_manifest(out) if r.mask)
    assert cases
    import SimpleITK as sitk
    labelled = 0
    for case, rows in cases.items():
        geometry = read_case_geometry(out, case)
        assert geometry['spatial']['spacing'] == 3.5 and geometry['spatial']['crop'] == 40
        on_slices = prediction_on_slices(out / 'labels' / f'{case}.nii.gz', geometry)
        np.testing.assert_array_equal(on_slices, _masks(out, rows))
        # by SimpleITK: the raw label in L,P,S, resampled in-plane to 3.5 mm (nearest, same origin and direction:
        # the first pixel centre kept), then the centred 40 x 40 window (60 x 60 after resampling: a real crop)
        site, number = case.split('_')[1:3]
        array, image = _sitk_display(next(raw.rglob(f'crossmoda20*_{site}_{number}_Label.nii.gz')))
        sx, sy, sz = image.GetSpacing()
        size = [int(round(image.GetSize()[0] * sx / 3.5)), int(round(image.GetSize()[1] * sy / 3.5)), image.GetSize()[2]]
        resampled = sitk.Resample(image, size, sitk.Transform(), sitk.sitkNearestNeighbor, image.GetOrigin(),
                                  (3.5, 3.5, sz), image.GetDirection(), 0.0, image.GetPixelID())
        expected = _centre_crop(sitk.GetArrayFromImage(resampled), 40)
        np.testing.assert_array_equal(on_slices, expected.astype(on_slices.dtype), err_msg=case)
        labelled += int(expected.any())
    assert labelled >= 1
    other = read_case_geometry(out, next(iter(cases)))
    other = dict(other, shape_zhw=[other['shape_zhw'][0], 31, 31])
    with pytest.raises(MedSegError, match='not this dataset'):
        prediction_on_slices(out / 'labels' / f'{next(iter(cases))}.nii.gz', other)


# ---- a hand-made test output over the shared Cranium dataset --------------------------------------------------------
def _hand_predictions(root: Path):
    """Predictions on the slice grid made from the masks (perfect, one slice erased, shifted, empty, ...) and their
    Dice / IoU on the source grid computed here with numpy against labels/<case>.nii.gz."""
    cases = group_by_case(r for r in read_manifest(root) if r.mask)
    preds, scores = {}, {}
    for n, (case, rows) in enumerate(sorted(cases.items())):
        truth = _masks(root, rows)
        kind = n % 4
        if kind == 0:
            pred = truth.copy()
        elif kind == 1:
            pred = truth.copy()
            pred[int(np.argmax((truth > 0).reshape(len(truth), -1).sum(1)))] = 0
        elif kind == 2:
            pred = np.roll(truth, 2 + n, axis=2)
        else:
            pred = np.zeros_like(truth)
        preds[case] = pred
        geometry = read_case_geometry(root, case)
        source = to_source_grid(pred, geometry).array
        gt = _source_label(root, case)
        g, p = gt == 1, source == 1
        total, union = int(g.sum() + p.sum()), int((g | p).sum())
        dice = 2 * int((g & p).sum()) / total if total else 1.0
        iou = int((g & p).sum()) / union if union else 1.0
        empty = 'both_empty' if not total else 'gt_empty' if not g.any() else 'pred_empty' if not p.any() else ''
        scores[case] = (dice, iou, empty)
    return preds, scores


@pytest.fixture(scope='module')
def hand_output(cranium_data, tmp_path_factory):
    out = tmp_path_factory.mktemp('hand') / 'pred'
    (out / 'volumes').mkdir(parents=True)
    preds, scores = _hand_predictions(cranium_data)
    for case, pred in preds.items():
        save_nifti(to_source_grid(pred, read_case_geometry(cranium_data, case)), out / 'volumes' / f'{case}.nii.gz',
                   np.uint8)
    with open(out / 'volumes' / 'metrics.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['case', 'class', 'dice', 'iou', 'empty'])
        for case, (dice, iou, empty) in sorted(scores.items()):
            writer.writerow([case, 1, repr(dice), repr(iou), empty])
    return out, preds


def test_report_of_a_test_output(hand_output, cranium_data, chrome, capsys):
    out, preds = hand_output
    assert report_main([str(out), '--data', str(cranium_data)]) == 0
    page = out / 'report.html'
    assert capsys.readouterr().out.strip() == str(page)
    assert sorted(p.name for p in out.iterdir()) == ['report.html', 'volumes']  # no temporary file left
    rows, metrics = read_metrics(out / 'volumes' / 'metrics.csv')
    images = check_page_basics(chrome, page)
    assert 'distribution of each metric per class' in images
    assert check_table(chrome, rows, metrics, ['background', 'hemorrhage']) == sorted(rows)
    before, after = check_sorting(chrome, rows, 1, 'hemorrhage')
    assert before == sorted(rows) and after != before
    # best, median and worst by Dice (recomputed from the CSV), one figure each
    ranked = dice_order(rows, 1, descending=True)
    roles = {'best': ranked[0], 'median': ranked[(len(ranked) - 1) // 2], 'worst': ranked[-1]}
    captions = _captions(chrome)
    for role, case in roles.items():
        assert any(c.startswith(f'{role} case {case}:') for c in captions), (role, case, captions)
    # the slices where they disagree most, recomputed from the masks and the hand predictions
    counts = []
    for case, rows_ in group_by_case(r for r in read_manifest(cranium_data) if r.mask).items():
        truth = _masks(cranium_data, rows_)
        differ = ((truth != preds[case]) & ((truth == 1) | (preds[case] == 1))).reshape(len(truth), -1).sum(1)
        counts += [(-int(n), case, k) for k, n in enumerate(differ) if n]
    expected = ', '.join(f'case {case} slice {k} ({-n} px)' for n, case, k in sorted(counts)[:6])
    assert any(f'over all cases: {expected};' in c for c in captions), captions
    text = chrome.evaluate('document.body.innerText')
    assert "every class tinted and outlined in the dataset's colour: hemorrhage" in text
    # the caption's swatch has the colour of the dataset class (CraniumDataset's palette: hemorrhage red)
    swatch = chrome.evaluate("getComputedStyle(document.querySelector('.swatch[data-class=hemorrhage]'))"
                             ".backgroundColor")
    assert swatch == 'rgb(255, 0, 0)'


def test_overlays_colour_each_class_with_the_dataset_palette():
    """A COVID joint model that labels both lungs left_lung looks wrong: in the prediction tile the right lung is
    outlined in left_lung's colour, and right_lung's colour is only in the truth tile; the legend names the
    classes. Colours read back from the PNG, pixel for pixel, against Covid19Dataset's METAINFO palette."""
    from mmseg.registry import DATASETS

    from mmseg_medical.report_figures import overlay_figures, overlay_panels

    meta = DATASETS.get('Covid19Dataset').METAINFO
    names, palette = list(meta['classes']), [tuple(c) for c in meta['palette']]
    left, right = names.index('left_lung'), names.index('right_lung')
    image = np.full((32, 32), 60, np.uint8)
    truth = np.zeros((32, 32), np.uint8)
    truth[8:24, 4:12], truth[8:24, 20:28] = left, right
    pred = np.where(truth > 0, left, 0).astype(np.uint8)        # both lungs called left_lung
    scored = [c for c in range(1, len(names))]
    picture = cv2.cvtColor(cv2.imdecode(np.frombuffer(overlay_panels([(image, truth, pred, 'slice 0')], scored, names,
                                                                     palette), np.uint8), cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
    tile_h = picture.shape[1] // 3          # three square tiles side by side (2 px gaps), the legend under them
    tiles = picture[:tile_h - 4]

    def columns(colour):   # tile index (0 image, 1 truth, 2 prediction) of the pixels of exactly this colour
        ys, xs = np.nonzero((tiles == np.array(colour, np.uint8)).all(-1))
        return np.bincount(xs * 3 // picture.shape[1], minlength=3)

    assert columns(palette[right])[1] > 0 and columns(palette[right])[2] == 0
    in_left = columns(palette[left])
    assert in_left[1] > 0 and in_left[2] > 0 and in_left[0] == 0
    assert in_left[2] > 1.8 * in_left[1]    # two lungs outlined in left_lung's colour against one
    figure = overlay_figures([(image, truth, pred, 'slice 0')], scored, names, palette)[0]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == names[1:]


def test_case_table_keeps_a_union_structure(tmp_path):
    """crossMoDA 2023's metrics.csv has a ``vs`` row (intra ∪ extra) per case: read as a structure of its own,
    after the classes, and left out of a case's mean Dice over its classes (it would count the VS twice)."""
    from mmseg_medical.report import mean_dice, read_case_table

    path = tmp_path / 'metrics.csv'
    path.write_text('case,class,dice,assd,empty\n'
                    'b,vs,0.8,1.0,\nb,3,0.9,0.5,\nb,1,0.5,2.0,\nb,2,0.7,1.5,\n'
                    'a,1,0.1,2.0,\na,2,0.2,1.5,\na,3,0.3,0.5,\na,vs,0.4,1.0,\n')
    table = read_case_table(path)
    assert table.classes == [1, 2, 3, 'vs'] and table.label_classes == [1, 2, 3]
    assert table.values['b']['vs'] == {'dice': 0.8, 'assd': 1.0}
    assert mean_dice(table, 'b') == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    path.write_text('case,class,dice,assd,empty\na,1,0.1,2.0,\na,vs,0.4,1.0,\nb,1,0.5,2.0,\n')
    with pytest.raises(MedSegError, match='rows missing for case/class b/vs'):
        read_case_table(path)


def test_report_errors_are_one_line_and_write_nothing(hand_output, cranium_data, tmp_path, capsys):
    def fails(args, *expected):
        assert report_main([str(a) for a in args]) == 1
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and err.startswith('error: '), err
        for text in expected:
            assert text in err, err
        return err

    empty = tmp_path / 'empty'
    empty.mkdir()
    fails([empty], 'no per-case metrics and no benchmark results')
    assert list(empty.iterdir()) == []
    fails([tmp_path / 'nothing'], 'not a folder')
    out, _ = hand_output
    bad = tmp_path / 'bad'
    shutil.copytree(out / 'volumes', bad / 'volumes')
    fails([bad], 'cannot find the prepared dataset', '--data')
    (bad / 'report.html').write_text('an earlier report')
    csv_path = bad / 'volumes' / 'metrics.csv'
    good = csv_path.read_text()
    csv_path.write_text(good.replace('case,class,dice', 'case,klass,dice'))
    fails([bad, '--data', cranium_data], 'columns must be case,class,<metrics>,empty')
    csv_path.write_text(good.replace(',1,', ',7,'))
    fails([bad, '--data', cranium_data], 'class indices [7] not in')
    csv_path.write_text(good)
    victim = sorted((bad / 'volumes').glob('*.nii.gz'))[-1]
    victim.unlink()
    fails([bad, '--data', cranium_data], f'{victim}: no predicted volume for case')
    assert (bad / 'report.html').read_text() == 'an earlier report'  # failures leave the last page as it was
    assert sorted(p.name for p in bad.iterdir()) == ['report.html', 'volumes']
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(out), '--no-such-option'])
    assert exit_info.value.code == 2


def test_command_line_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / 'tools/report.py'), str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 1
    assert proc.stderr.count('\n') == 1 and 'no per-case metrics' in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ---- a benchmark work dir ------------------------------------------------------------------------------------------
def _chart(path: Path, labels, values, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.barh(labels, values)
    ax.set_title(title)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def test_report_of_a_benchmark_work_dir(tmp_path, chrome):
    """The comparison tables (results.md, fold_table.md) and charts of a benchmark work dir, in the page."""
    work = tmp_path / 'bench'
    work.mkdir()
    (work / 'results.md').write_text(
        '| Method | lr | vol. Dice (0-1) | config |\n|---|---:|---:|---|\n'
        '| fcn_unet_s5-d16 | 0.01 | 0.8123 | `a.py` |\n| pspnet_unet_s5-d16 | 0.001 | 0.7012 | `b.py` |\n\n'
        'vol.: per-case 3D metrics; protocol `default` for every test.\n')
    (work / 'results.csv').write_text('config,lr,volume/mDice\na.py,0.01,0.8123\nb.py,0.001,0.7012\n')
    _chart(work / 'results.png', ['fcn', 'pspnet'], [0.8123, 0.7012], 'vol. Dice')
    (work / 'fold_table.md').write_text('## Task 1\n\n| fold | DSC |\n|---|---:|\n| 0 | 71.2 ± 3.1 |\n| **all** | '
                                        '**70.0 ± 4.0** |\n')
    _chart(work / 'fold_table.png', ['fold 0'], [71.2], 'DSC')
    assert report_main([str(work)]) == 0
    images = check_page_basics(chrome, work / 'report.html')
    assert set(images) == {'results', 'fold_table'}
    assert images['results'] == png_size(work / 'results.png')
    tables = chrome.evaluate("Array.from(document.querySelectorAll('table.bench')).map(t => "
                             "Array.from(t.rows).map(r => Array.from(r.cells).map(c => c.textContent)))")
    assert tables[0] == [['Method', 'lr', 'vol. Dice (0-1)', 'config'], ['fcn_unet_s5-d16', '0.01', '0.8123', 'a.py'],
                         ['pspnet_unet_s5-d16', '0.001', '0.7012', 'b.py']]
    assert tables[1] == [['fold', 'DSC'], ['0', '71.2 ± 3.1'], ['all', '70.0 ± 4.0']]
    assert chrome.evaluate("document.querySelectorAll('#cases').length") == 0


def test_browser_checks_catch_a_broken_page(tmp_path, chrome):
    """The checks above can fail: a console error, an exception and a picture that does not decode are seen."""
    page = tmp_path / 'broken.html'
    page.write_text('<!DOCTYPE html><html><body><img alt="x" src="data:image/png;base64,AAAA">'
                    '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    chrome.open(page)
    errors = chrome.errors()
    assert any('boom' in e for e in errors) and any('undefinedFunction' in e for e in errors)
    assert chrome.evaluate(IMAGES_JS) == [['x', 0, 0]]


# ---- a shrunk Cranium run: mim train, mim test --out (ReportHook), tools/report.py ---------------------------------
@pytest.fixture(scope='module')
def cranium_run(tmp_path_factory):
    """8 synthetic patients (NIfTI layout), half of them held out; trained 100 iterations (lr 0.05, background
    weighted 0.02 in the loss, about 2 s more than 4 plain iterations) so that the tiny model predicts hemorrhage,
    partly right and partly wrong; tested with --out and ReportHook enabled from the command line."""
    root = tmp_path_factory.mktemp('report_run')
    write_cranium_release(root / 'raw', num_patients=8, num_slices=6, size=64, seed=0, layouts=('nifti',))
    data = root / 'data'
    prepare(CONVERTERS['cranium'](val_fraction=0.5), root / 'raw', data, workers=2, previews=0)
    options = [*tiny_overrides(data, scale=32, iters=ITERS, workers=0, lr=0.05),
               'model.decode_head.loss_decode.class_weight=[0.02,1.0]']
    run(mim_train(CONFIG, root / 'train', options, ['--gpus', '0']), log=root / 'train.log', cwd=REPO)
    checkpoint = last_checkpoint(root / 'train')
    work = root / 'test'
    out = work / 'pred'
    run(mim_test(CONFIG, checkpoint, work, [*options, 'default_hooks.report.type=ReportHook'],
                 ['--gpus', '0', '--out', str(out)]), log=root / 'test.log', cwd=REPO)
    return {'data': data, 'checkpoint': checkpoint, 'out': out, 'work': work, 'log': root / 'test.log',
            'options': options, 'root': root}


def test_mim_test_writes_the_report(cranium_run, chrome, tmp_path):
    out, data = cranium_run['out'], cranium_run['data']
    page = out / 'report.html'
    assert f'test report: {page}' in cranium_run['log'].read_text()
    stored = json.loads((out / 'run.json').read_text())
    assert stored['config'] == str(CONFIG) and stored['checkpoint'] == str(cranium_run['checkpoint'])
    assert stored['protocol'] == 'default' and Path(stored['data_root']) == data.resolve()
    rows, metrics = read_metrics(out / 'volumes' / 'metrics.csv')
    # one row per test case: the config tests splits/val.txt, i.e. the cases of splits.json's 'val' list
    test_cases = json.loads((data / 'splits.json').read_text())['val']
    assert len(test_cases) == 4
    images = check_page_basics(chrome, page)
    assert len(images) >= 3
    assert check_table(chrome, rows, metrics, json.loads((data / 'dataset.json').read_text())['classes']) \
        == sorted(test_cases)
    assert sorted(rows) == sorted(test_cases)
    facts = run_facts(chrome)
    assert facts['config'].startswith(str(CONFIG))
    assert facts['checkpoint'].startswith(str(cranium_run['checkpoint']))
    assert facts['evaluation protocol'].startswith('default (run.json)')
    assert facts['prepared dataset'].startswith(str(data.resolve()))
    assert facts['test split list'].startswith(str(data.resolve() / 'splits' / 'val.txt'))
    assert facts['cases scored'] == '4'
    # the top of the page (run, table, distribution, first overlays) at 0.55 scale: the README's picture
    shot = chrome.screenshot(tmp_path / 'report.png', width=1200, height=2400, scale=0.55)
    assert png_size(shot) == (660, 1320) and shot.stat().st_size < SCREENSHOT_LIMIT
    target = os.environ.get('REPORT_SCREENSHOT')
    if target:
        shutil.copyfile(shot, target)
    else:   # the README's picture is this page: a stale screenshot (another layout, other sections) fails here
        assert '![test report of a shrunk Cranium run](docs/report_screenshot.png)' in (REPO / 'README.md').read_text()
        committed = REPO / 'docs' / 'report_screenshot.png'
        assert png_size(committed) == (660, 1320) and committed.stat().st_size < SCREENSHOT_LIMIT
        fresh, old = (cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float64) for path in (shot, committed))
        # measured: the same page with other temporary paths gives correlation 0.992, mean difference 0.86 grey
        # levels; the committed picture moved down by 40 px gives 0.55 (at 1/10 scale)
        assert np.corrcoef(fresh.ravel(), old.ravel())[0, 1] > 0.95 and np.abs(fresh - old).mean() < 4, \
            'docs/report_screenshot.png is stale: refresh it with REPORT_SCREENSHOT=docs/report_screenshot.png'
    # real, varied predictions: some case scored strictly between 0 and 1, the cases' Dice all different, so that
    # the click on Dice reorders the rows by value (not by the case-id tie-break)
    dice = {case: float(rows[case][1]['dice']) for case in rows}
    assert any(0 < d < 1 for d in dice.values()), dice
    assert len(set(dice.values())) == len(dice), dice
    assert any(rows[case][1]['empty'] in ('', 'gt_empty') for case in rows), rows  # something predicted
    before, after = check_sorting(chrome, rows, 1, 'hemorrhage')
    assert before == sorted(test_cases) and after != before
    assert after == sorted(dice, key=dice.get)


def test_report_tool_finds_the_run_from_its_log(cranium_run, chrome):
    """Without run.json, tools/report.py DIR reads config, checkpoint and protocol from the mim test log beside DIR
    (the work dir holding it) and writes the same table."""
    out = cranium_run['out']
    (out / 'run.json').rename(out / 'run.json.aside')
    try:
        proc = subprocess.run([sys.executable, str(REPO / 'tools/report.py'), str(out)], capture_output=True,
                              text=True, cwd=cranium_run['root'])
    finally:
        (out / 'run.json.aside').rename(out / 'run.json')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / 'report.html')
    rows, metrics = read_metrics(out / 'volumes' / 'metrics.csv')
    check_page_basics(chrome, out / 'report.html')
    check_table(chrome, rows, metrics, ['background', 'hemorrhage'])
    facts = run_facts(chrome)
    log = sorted(cranium_run['work'].glob('*/*.log'))[-1]
    assert facts['log'] == f'{log} (the newest mim test log whose config wrote to {out})'
    assert facts['evaluation protocol'].startswith(f"default (log line 'volume metrics over …, protocol …' ({log.name}))")
    assert facts['checkpoint'] == f"{cranium_run['checkpoint']} (log line 'Load checkpoint from …' ({log.name}))"
    assert facts['config'].startswith(str(cranium_run['work'] / CONFIG.name))
    assert facts['prepared dataset'].startswith(str(cranium_run['data'].resolve()))
    assert 'config as run' in chrome.evaluate('document.body.innerText')


def test_relative_data_root_and_a_work_dir_apart_from_out(cranium_run, tmp_path):
    """The configs' relative data_root, mim test run from the folder holding the data, the work dir apart from
    --out: the test writes run.json with absolute paths (also without ReportHook) and the report is found from
    another folder (before, the root was joined twice: '.../data/data/splits/val.txt ... not in the prepared
    dataset', exit 1)."""
    root = cranium_run['root']
    options = [*tiny_overrides('data', scale=32, iters=ITERS, workers=0, lr=0.05),
               'model.decode_head.loss_decode.class_weight=[0.02,1.0]']
    assert 'test_dataloader.dataset.data_root=data/' in options
    work, out = tmp_path / 'work', tmp_path / 'elsewhere' / 'pred'
    run(mim_test(CONFIG, cranium_run['checkpoint'], work, [*options, 'default_hooks.report.type=ReportHook'],
                 ['--gpus', '0', '--out', str(out)]), log=tmp_path / 'test.log', cwd=root)
    stored = json.loads((out / 'run.json').read_text())
    data = cranium_run['data'].resolve()
    assert stored == {'config': str(CONFIG), 'checkpoint': str(cranium_run['checkpoint']), 'protocol': 'default',
                      'data_root': str(data), 'split_file': str(data / 'splits' / 'val.txt'),
                      'work_dir': str(work), 'log': stored['log']}
    assert Path(stored['log']).parent.parent == work and Path(stored['log']).is_file()
    assert (out / 'report.html').is_file()
    (out / 'report.html').unlink()
    elsewhere = tmp_path / 'cwd'
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, str(REPO / 'tools/report.py'), str(out)], capture_output=True, text=True,
                          cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / 'report.html')
    page = (out / 'report.html').read_text()
    assert str(data / 'splits' / 'val.txt') in page and 'have no row in' not in page
    # a plain mim test (no ReportHook) writes run.json too: RunInfoHook is in every config
    (out / 'run.json').unlink()
    run(mim_test(CONFIG, cranium_run['checkpoint'], work, options, ['--gpus', '0', '--out', str(out)]),
        log=tmp_path / 'test2.log', cwd=root)
    again = json.loads((out / 'run.json').read_text())
    assert {k: again[k] for k in ('config', 'checkpoint', 'data_root', 'split_file')} == \
        {k: stored[k] for k in ('config', 'checkpoint', 'data_root', 'split_file')}


def test_report_hook_without_out_stops_before_testing(cranium_run, tmp_path):
    with pytest.raises(RuntimeError) as failure:
        run(mim_test(CONFIG, cranium_run['checkpoint'], tmp_path / 'work',
                     [*cranium_run['options'], 'default_hooks.report.type=ReportHook'], ['--gpus', '0']),
            log=tmp_path / 'test.log', cwd=REPO)
    assert 'ReportHook: no output folder: run mim test with --out DIR' in str(failure.value)
    assert 'Iter(test)' not in (tmp_path / 'test.log').read_text()


@pytest.mark.parametrize('ci, outcome', [('', 'skipped'), ('true', 'failed')])
def test_missing_browser_skips_off_ci_and_fails_on_ci(tmp_path, ci, outcome):
    """Without Chromium a browser test skips with the reason on a developer's machine and fails when CI is set."""
    probe = tmp_path / 'test_probe.py'
    probe.write_text('import importlib.util\n'
                     f'spec = importlib.util.spec_from_file_location("b", {str(Path(__file__).with_name("browser.py"))!r})\n'
                     'b = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(b)\n\n'
                     'def test_page():\n    b.chromium_or_skip()\n')
    env = {k: v for k, v in os.environ.items() if k not in ('CI', 'REQUIRE_BROWSER')}
    env.update(CHROMIUM=str(tmp_path / 'no-chromium'), CI=ci)
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-rs', '-p', 'no:cacheprovider', str(probe)], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert f'1 {outcome}' in proc.stdout, proc.stdout
    assert 'no Chromium on PATH (apt-get install chromium; .ci/run installs it)' in proc.stdout


