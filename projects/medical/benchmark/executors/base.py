"""What every executor shares: a run as a :class:`Unit`, its spec file and worker command, progress lines."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, List, Optional

#: The module that executes one run's spec (``python -m mmseg_medical.benchmark.job SPEC``).
WORKER_MODULE = 'mmseg_medical.benchmark.job'


#: Seconds between two looks at the running jobs (``MMSEG_MEDICAL_POLL_S`` overrides it).
POLL_S = float(os.environ.get('MMSEG_MEDICAL_POLL_S', '2'))


def now_iso() -> str:
    """The current UTC time in ISO 8601 with milliseconds (``2026-12-07T23:40:01.123+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec='milliseconds')


@dataclass
class Unit:
    """One run of the benchmark: ``label`` names it in messages, ``run_dir`` holds its files, ``spec`` is what
    :func:`job_main` executes, ``done`` says whether its results are complete."""

    label: str
    run_dir: Path
    spec: dict
    done: Callable[[], bool]
    job_id: Optional[str] = field(default=None, compare=False)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log (or a note that there is none)."""
    if not path.is_file():
        return f'({path} does not exist)'
    return ''.join(path.read_text(errors='replace').splitlines(keepends=True)[-lines:]).rstrip('\n')


def write_spec(unit: Unit, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'spec.json'
    path.write_text(json.dumps(unit.spec, indent=1) + '\n')
    return path


def worker_command(spec_path: Path, launcher: str) -> List[str]:
    return [sys.executable, '-m', WORKER_MODULE, '--launcher', launcher, str(spec_path)]


class Progress:
    """Prints ``<what>: Q queued, R running, D done, F failed`` whenever the counts change."""

    def __init__(self, what: str) -> None:
        self.what, self.last = what, None

    def show(self, queued: int, running: int, done: int, failed: int) -> None:
        counts = (queued, running, done, failed)
        if counts != self.last:
            self.last = counts
            print(f'{self.what}: {queued} queued, {running} running, {done} done, {failed} failed', flush=True)
