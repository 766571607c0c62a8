"""mmseg_medical.threads / runs.choose_threads: CPU-sized runs keep dataloader workers x torch threads <= cores."""
from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
import torch

import mmseg_medical  # noqa: F401  (registers CpuThreadsHook)
from mmseg_medical.runs import choose_threads, tiny_overrides, usable_cores
from mmseg_medical.threads import CpuThreadsHook


@pytest.mark.parametrize('workers, cores, threads', [(0, 2, 2), (1, 2, 2), (2, 2, 1), (4, 2, 1), (2, 8, 4),
                                                     (3, 8, 2), (0, 1, 1)])
def test_workers_times_threads_within_the_cores(workers, cores, threads):
    assert choose_threads(workers, cores) == threads
    assert max(1, workers) * threads <= cores or threads == 1


def test_usable_cores_is_the_affinity():
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_tiny_overrides_carry_the_hook():
    options = dict(o.split('=', 1) for o in tiny_overrides('data/x', workers=2, threads=3))
    assert options['default_hooks.threads.type'] == 'CpuThreadsHook'
    assert (options['default_hooks.threads.threads'], options['default_hooks.threads.workers']) == ('3', '2')
    chosen = dict(o.split('=', 1) for o in tiny_overrides('data/x', workers=2))
    assert chosen['default_hooks.threads.threads'] == str(max(1, usable_cores() // 2))


def test_hook_sets_the_torch_threads_and_says_so(caplog):
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    logger = logging.getLogger('test_threads')
    try:
        with caplog.at_level(logging.INFO, logger='test_threads'):
            CpuThreadsHook(threads=target, workers=2).before_run(SimpleNamespace(logger=logger))
        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(before)
    [line] = [r.getMessage() for r in caplog.records]
    assert line == f'CPU threads: torch {target} (was {before}) x 2 dataloader worker(s) on {usable_cores()} cores ' \
                   '(CpuThreadsHook)'


def test_threads_must_be_positive():
    with pytest.raises(ValueError, match='threads must be >= 1, got 0'):
        CpuThreadsHook(threads=0)
