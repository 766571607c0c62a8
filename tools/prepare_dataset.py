#!/usr/bin/env python
"""Convert a public medical dataset into 2D PNG slices for MMSegmentation (see --help)."""
import sys

from mmseg_medical.conversion.cli import main

if __name__ == '__main__':
    sys.exit(main())
