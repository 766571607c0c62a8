#!/usr/bin/env python
"""Print the --cfg-options of a CPU-sized run (mmseg_medical.runs.tiny_overrides) for a prepared dataset.

Usage: mim train mmseg CONFIG $(python tools/tiny_options.py data/cranium [--iters 300] [--scale 64])
       mim test mmseg CONFIG --checkpoint CKPT $(python tools/tiny_options.py data/cranium)   # the same options

The line also sets the run's torch threads (CpuThreadsHook: dataloader workers x threads <= cores; --threads N
chooses another number) and says so in one line on stderr.
The logic lives in ``mmseg_medical.runs``. Whatever fails (a typo in DATA, a bad option, even a Python without
the package) prints one error line on stderr, exits non-zero and prints ``runs.FAILED_TOKEN`` on stdout, so the
command that consumes ``$(...)`` fails too instead of training the full-size recipe on the default data.
"""
import sys

FAILED_TOKEN = '--tiny-options-failed--see-its-error-line-above'  # = mmseg_medical.runs.FAILED_TOKEN

if __name__ == '__main__':
    try:
        from mmseg_medical.runs import tiny_options_main
    except BaseException as exc:  # e.g. a Python without mmseg_medical: still make the consuming command fail
        print(FAILED_TOKEN)
        print(f'error: tiny_options.py: cannot import mmseg_medical ({type(exc).__name__}: {exc})', file=sys.stderr)
        sys.exit(1)
    sys.exit(tiny_options_main())
