"""Write synthetic raw data in the on-disk formats of the real releases.

Example: ``python tools/generate_synthetic.py cranium --out /tmp/raw --patients 6``
"""
import sys

from mmseg_medical.synthetic.cli import main

if __name__ == '__main__':
    sys.exit(main())
