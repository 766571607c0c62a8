#!/usr/bin/env python
"""Train and test a list of configs, or a COVID-19-CT-Seg benchmark task on its official folds, and tabulate slice
+ volume metrics (see --help)."""
import sys

from mmseg_medical.benchmark import main

if __name__ == '__main__':
    sys.exit(main())
