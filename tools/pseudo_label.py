"""Pseudo-label an unlabelled split of a prepared dataset with a trained model (self-training, see --help).

Usage: python tools/pseudo_label.py CONFIG CHECKPOINT --data OUT --split target --portion 0.6
       --out-split target_pseudo [--mix-with train] [--batch-size N] [--device cpu] [--cfg-options ...]

The logic lives in ``mmseg_medical.pseudo_label``.
"""
import sys

from mmseg_medical.pseudo_label import main

if __name__ == '__main__':
    sys.exit(main())
