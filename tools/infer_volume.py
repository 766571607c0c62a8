#!/usr/bin/env python
"""Segment NIfTI volumes, DICOM series or a prepared dataset's split with a trained 2D model or an
ensemble (see --help).

Usage: python tools/infer_volume.py CONFIG CHECKPOINT [CHECKPOINT ...] --input SCAN_OR_FOLDER --output OUT_DIR
       python tools/infer_volume.py CONFIG CHECKPOINT [...] --data PREPARED --split test --output OUT_DIR
       [--model CONFIG CHECKPOINT ...] [--tta none|flip|flip2] [--save-probabilities] [--label-suffix _Label]
       [--batch-size N] [--device cpu|cuda] [--postprocess FILE] [--cfg-options KEY=VALUE ...]

The logic lives in ``mmseg_medical.inference`` / ``mmseg_medical.inference_cli``.
"""
import sys

from mmseg_medical.inference_cli import main

if __name__ == '__main__':
    sys.exit(main())
