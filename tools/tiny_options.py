#!/usr/bin/env python
"""Print the --cfg-options of a CPU-sized run (mmseg_medical.runs.tiny_overrides) for a prepared dataset.

Usage: mim train mmseg CONFIG $(python tools/tiny_options.py data/cranium [--iters 300] [--scale 64])
       mim test mmseg CONFIG --checkpoint CKPT $(python tools/tiny_options.py data/cranium)   # the same options

The line also sets the run's torch threads (CpuThreadsHook: dataloader workers x threads <= cores; --threads N
chooses another number) and says so in one line on stderr. The logic lives in ``mmseg_medical.runs``.
"""
import sys

from mmseg_medical.runs import tiny_options_main

if __name__ == '__main__':
    sys.exit(tiny_options_main())
