"""Per-case, per-class Dice/IoU/NSD/HD95/ASSD of predicted NIfTI label maps against ground truth.

Usage: python tools/evaluate_volumes.py --pred PRED_DIR --gt GT_DIR --out metrics.csv
       [--nsd-tolerance 1:1.0,2:3.0] [--classes 1,2] [--bootstrap 5000] [--seed 0]

The logic lives in ``mmseg_medical.evaluation.cli`` (see ``--help``).
"""
import sys

from mmseg_medical.evaluation.cli import main

if __name__ == '__main__':
    sys.exit(main())
