"""Per-class summary: mean, std, percentile-bootstrap CI, empty counts and the markdown table."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mmseg_medical.errors import MedSegError
from mmseg_medical.evaluation import METRIC_NAMES, bootstrap_mean_ci, empty_row, format_summary_markdown, summarize


def random_rows(n, cls=1, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        dice = float(np.clip(rng.normal(0.8, 0.1), 0, 1))
        rows.append({'class': cls, 'dice': dice, 'iou': dice / (2 - dice), 'nsd': float(rng.uniform(0.5, 1)),
                     'hd95': float(rng.gamma(2.0, 3.0)), 'assd': float(rng.gamma(2.0, 1.0)), 'empty': ''})
    return rows


def test_mean_and_std_match_numpy():
    rows = random_rows(40)
    entry = summarize(rows, n_bootstrap=10, seed=1)[1]
    assert entry['n'] == 40
    for name in METRIC_NAMES:
        values = np.array([r[name] for r in rows])
        assert entry[name]['mean'] == pytest.approx(values.mean(), rel=1e-12)
        assert entry[name]['std'] == pytest.approx(values.std(ddof=1), rel=1e-12)


class FixedResamples:
    """Stands in for the generator: ``multinomial`` returns fixed draw counts (one row per resample)."""

    def __init__(self, counts):
        self.counts = np.array(counts)

    def multinomial(self, n, pvals, size):
        assert n == self.counts.shape[1] and size == len(self.counts)
        return self.counts


def test_percentile_bootstrap_of_fixed_resamples_by_hand():
    values = np.array([[1.0], [2.0], [3.0], [6.0]])
    # resample means: 4x1 -> 1; 4x6 -> 6; one of each -> 3; 2x1 + 2x2 -> 1.5; 2x3 + 2x6 -> 4.5
    rng = FixedResamples([[4, 0, 0, 0], [0, 0, 0, 4], [1, 1, 1, 1], [2, 2, 0, 0], [0, 0, 2, 2]])
    # sorted means 1, 1.5, 3, 4.5, 6; linear interpolation at q * (5 - 1):
    # ci 0.5 -> q 0.25, 0.75 -> positions 1, 3 -> 1.5, 4.5; ci 0.8 -> positions 0.4, 3.6 -> 1.2, 5.4
    np.testing.assert_allclose(bootstrap_mean_ci(values, 5, rng, 0.5), [[1.5], [4.5]])
    np.testing.assert_allclose(bootstrap_mean_ci(values, 5, rng, 0.8), [[1.2], [5.4]])


def test_ci_agrees_with_scipy_percentile_bootstrap():
    """Same estimator as scipy.stats.bootstrap(method='percentile'); the two Monte-Carlo estimates of each
    bound differ by ~0.03 standard errors of the mean at 20000 resamples: allow 0.15."""
    rows = random_rows(40)
    summary = summarize(rows, n_bootstrap=20000, seed=1)[1]
    for name in METRIC_NAMES:
        values = np.array([r[name] for r in rows])
        ref = stats.bootstrap((values,), np.mean, n_resamples=20000, method='percentile', confidence_level=0.95,
                              rng=np.random.default_rng(123)).confidence_interval
        tol = 0.15 * values.std(ddof=1) / np.sqrt(len(values))
        assert summary[name]['ci_low'] == pytest.approx(ref.low, abs=tol)
        assert summary[name]['ci_high'] == pytest.approx(ref.high, abs=tol)


def test_no_bootstrap_means_no_ci():
    rows = random_rows(6) + [empty_row(1, 'gt_empty', 10.0)]
    entry = summarize(rows, n_bootstrap=0)[1]
    for name in METRIC_NAMES:
        values = np.array([r[name] for r in rows])
        assert entry[name]['mean'] == pytest.approx(values.mean())
        assert entry[name]['ci_low'] is None and entry[name]['ci_high'] is None
    assert entry['n_bootstrap'] == 0
    text = format_summary_markdown({1: entry})
    assert 'no bootstrap CI' in text and '[' not in text
    row = [c.strip() for c in text.splitlines()[-1].split('|')[1:-1]]
    assert row[2] == f"{entry['dice']['mean']:.4f} ± {entry['dice']['std']:.4f}"


def test_bootstrap_is_deterministic_for_a_seed():
    rows1, rows2 = random_rows(25), random_rows(25, cls=2, seed=5)
    a = summarize(rows1 + rows2, n_bootstrap=500, seed=7)
    again = summarize(rows1 + rows2, n_bootstrap=500, seed=7)
    other_class_first = summarize(rows2 + rows1, n_bootstrap=500, seed=7)
    alone = summarize(rows1, n_bootstrap=500, seed=7)
    c = summarize(rows1 + rows2, n_bootstrap=500, seed=8)
    assert a == again == other_class_first
    assert alone[1] == a[1]  # a class's CI does not depend on the other classes' rows
    assert a[1]['dice']['ci_low'] != c[1]['dice']['ci_low']


def test_ci_narrows_with_more_cases():
    small = summarize(random_rows(10, seed=2), n_bootstrap=3000)[1]
    large = summarize(random_rows(400, seed=2), n_bootstrap=3000)[1]
    for name in METRIC_NAMES:
        assert large[name]['ci_high'] - large[name]['ci_low'] < small[name]['ci_high'] - small[name]['ci_low']


def test_ci_level():
    rows = random_rows(60, seed=3)
    wide = summarize(rows, n_bootstrap=3000, ci=0.99)[1]['hd95']
    narrow = summarize(rows, n_bootstrap=3000, ci=0.5)[1]['hd95']
    assert wide['ci_high'] - wide['ci_low'] > narrow['ci_high'] - narrow['ci_low']


def test_empty_cases_are_counted_and_kept_in_the_mean():
    rows = random_rows(3)
    rows += [empty_row(1, 'both_empty', 50.0), empty_row(1, 'gt_empty', 50.0), empty_row(1, 'pred_empty', 50.0),
             empty_row(1, 'pred_empty', 50.0)]
    entry = summarize(rows, n_bootstrap=100)[1]
    assert entry['n'] == 7
    assert entry['empty'] == {'both_empty': 1, 'gt_empty': 1, 'pred_empty': 2}
    expected = (sum(r['hd95'] for r in rows[:3]) + 0.0 + 3 * 50.0) / 7
    assert entry['hd95']['mean'] == pytest.approx(expected)


def test_single_case():
    rows = random_rows(1)
    entry = summarize(rows, n_bootstrap=50)[1]
    assert entry['dice']['std'] == 0.0
    assert entry['dice']['ci_low'] == pytest.approx(rows[0]['dice'])
    assert entry['dice']['ci_high'] == pytest.approx(rows[0]['dice'])


def test_invalid_arguments_and_values():
    with pytest.raises(MedSegError):
        summarize(random_rows(3), n_bootstrap=-1)
    with pytest.raises(MedSegError):
        summarize(random_rows(3), ci=1.0)
    bad = random_rows(2)
    bad[0]['hd95'] = float('inf')
    with pytest.raises(MedSegError, match='finite'):
        summarize(bad)


def test_markdown_table():
    rows = random_rows(5) + random_rows(4, cls=3) + [empty_row(3, 'gt_empty', 10.0)]
    summary = summarize(rows, n_bootstrap=200)
    text = format_summary_markdown(summary)
    lines = [ln for ln in text.splitlines() if ln.startswith('|')]
    assert lines[0].split('|')[1:-1] == [' class ', ' n ', ' dice ', ' iou ', ' nsd ', ' hd95 (mm) ', ' assd (mm) ',
                                         ' both_empty ', ' gt_empty ', ' pred_empty ']
    assert len(lines) == 2 + 2
    row3 = [c.strip() for c in lines[3].split('|')[1:-1]]
    assert row3[0] == '3' and row3[1] == '5' and row3[-3:] == ['0', '1', '0']
    d = summary[3]['dice']
    assert row3[2] == f'{d["mean"]:.4f} ± {d["std"]:.4f} [{d["ci_low"]:.4f}, {d["ci_high"]:.4f}]'
    assert text.splitlines()[0] == ('Protocol default. Each cell: mean ± std [95% CI of the mean] over cases, the CI '
                                    'from 200 bootstrap resamples. Aggregation rule: mean ± sample std over cases, '
                                    '95% percentile-bootstrap CI (seeded).')
