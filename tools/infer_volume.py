#!/usr/bin/env python
"""Segment NIfTI volumes / DICOM series slice by slice with a trained 2D model (see --help).

Usage: python tools/infer_volume.py CONFIG CHECKPOINT --input SCAN_OR_FOLDER --output OUT_DIR
       [--batch-size N] [--device cpu|cuda] [--cfg-options KEY=VALUE ...]

The logic lives in ``mmseg_medical.inference`` / ``mmseg_medical.inference_cli``.
"""
import sys

from mmseg_medical.inference_cli import main

if __name__ == '__main__':
    sys.exit(main())
