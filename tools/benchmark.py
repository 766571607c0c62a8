#!/usr/bin/env python
"""Train and test a list of configs (or a preset: an lr sweep, heads, a 1-slice config beside its 2.5D counterpart),
or a COVID-19-CT-Seg benchmark task on its official folds, and tabulate slice + volume metrics with a chart in which
every run has its own label (see --help)."""
import sys

from mmseg_medical.benchmark import main

if __name__ == '__main__':
    sys.exit(main())
