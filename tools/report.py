"""Write DIR/report.html after `mim test ... --out DIR` (or for a benchmark work dir): one self-contained page.

Usage: python tools/report.py DIR [--data PREPARED] [--config CFG] [--checkpoint CKPT] [--protocol NAME]
       [--work-dir WORK_DIR]

The logic lives in ``mmseg_medical.report`` (see ``--help``).
"""
import sys

from mmseg_medical.report import main

if __name__ == '__main__':
    sys.exit(main())
