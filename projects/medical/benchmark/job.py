"""One run of the benchmark in its own process (started by :mod:`.executors`): ``python -m mmseg_medical.benchmark.job
[--launcher local|slurm] SPEC`` executes the run a spec file describes and records how it ran in its
``result.json``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .executors.base import WORKER_MODULE


def job_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m mmseg_medical.benchmark.job [--launcher local|slurm] SPEC``: execute one run."""
    parser = argparse.ArgumentParser(prog=f'python -m {WORKER_MODULE}', description=job_main.__doc__)
    parser.add_argument('--launcher', choices=('local', 'slurm'), default='local')
    parser.add_argument('spec', type=Path)
    args = parser.parse_args(argv)
    from .runner import RUN_ERRORS, execute_unit

    job_id = os.environ.get('SLURM_JOB_ID') if args.launcher == 'slurm' else None
    try:
        execute_unit(json.loads(args.spec.read_text()), launcher=args.launcher, job_id=job_id)
    except RUN_ERRORS as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(job_main())
