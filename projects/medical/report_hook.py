"""``RunInfoHook`` (every config) records the run next to ``mim test --out DIR``; ``ReportHook`` also writes
``DIR/report.html`` (:mod:`mmseg_medical.report`).

:class:`RunInfoHook` is in the ``custom_hooks`` of every config (``configs/_base_/datasets/medical_slices_512x512.py``):
before the test it hands the run's facts, as absolute paths, to the test ``VolumeMetric``, which writes them as
``DIR/run.json`` together with ``DIR/volumes/metrics.csv`` (config, checkpoint, protocol, prepared dataset, test
split list, work dir, log: what ``tools/report.py DIR`` reads back, from any folder, wherever the work dir is).

Enable the report for one run without touching the config::

    mim test mmseg CONFIG --checkpoint CKPT --out DIR --cfg-options default_hooks.report.type=ReportHook

or in a config: ``default_hooks = dict(report=dict(type='ReportHook'))`` (merged into the default hooks, so
the ``custom_hooks`` of the base configs stay). Before the test it checks that a
``VolumeMetric`` will write ``DIR/volumes`` (else the run stops at once with one error line); after the test it
writes the report (atomically, on the main process only) from ``DIR/run.json``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .errors import MedSegError


def _volume_metric(runner):
    """The test evaluator's VolumeMetric (or a subclass, e.g. Covid19VolumeMetric)."""
    from .evaluation.volume_metric import VolumeMetric

    return next((m for m in runner.test_loop.evaluator.metrics if isinstance(m, VolumeMetric)), None)


def run_facts(runner) -> dict:
    """The run's config, checkpoint, test split list, work dir and log as absolute paths (relative ones are
    relative to the folder ``mim test`` ran in; the dataset has already joined ``ann_file`` to ``data_root``)."""
    def absolute(path) -> Optional[str]:
        if not path:
            return None
        return str(path) if '://' in str(path) else os.path.abspath(path)   # URLs (load_from=https://...) as given

    dataset = runner.test_dataloader.dataset
    return {'config': absolute(runner.cfg.filename), 'checkpoint': absolute(runner.cfg.get('load_from')),
            'split_file': absolute(getattr(dataset, 'ann_file', None)), 'work_dir': absolute(runner.work_dir),
            'log': absolute(os.path.join(runner.log_dir, f'{runner.timestamp}.log'))}


@HOOKS.register_module()
class RunInfoHook(Hook):
    """Gives the test ``VolumeMetric`` the run's facts (:func:`run_facts`) to write as ``DIR/run.json``."""

    priority = 'VERY_HIGH'

    def before_test(self, runner) -> None:
        metric = _volume_metric(runner)
        if metric is not None:
            metric.run_facts = run_facts(runner)


@HOOKS.register_module()
class ReportHook(Hook):
    """Write ``report.html`` into the ``--out`` folder after ``mim test``.

    Args:
        out_dir: where to write (default: the folder given to ``--out``, i.e. the parent of the VolumeMetric's
            ``output_dir``).
    """

    priority = 'VERY_LOW'

    def __init__(self, out_dir: Optional[str] = None) -> None:
        self.out_dir = out_dir

    def _out_dir(self, runner) -> Path:
        metric = _volume_metric(runner)
        if metric is None:
            raise MedSegError(None, 'ReportHook: the test_evaluator has no VolumeMetric, so there are no per-case '
                                    'metrics to report (use a config whose test_evaluator lists one)')
        if not metric.output_dir:
            raise MedSegError(None, 'ReportHook: no output folder: run mim test with --out DIR (the VolumeMetric '
                                    'then writes DIR/volumes and the report goes to DIR/report.html)')
        return Path(self.out_dir) if self.out_dir else Path(metric.output_dir).parent

    def before_test(self, runner) -> None:
        self._out_dir(runner)  # fail before the test runs, not after
        metric = _volume_metric(runner)
        if not metric.run_facts:  # a config without RunInfoHook
            metric.run_facts = run_facts(runner)

    def after_test_epoch(self, runner, metrics=None) -> None:
        if not is_main_process():
            return
        from .report import RUN_INFO_NAME, find_run_info, write_report

        out_dir = self._out_dir(runner)
        info = find_run_info(out_dir)
        info.config_text = runner.cfg.pretty_text
        info.sources['config_text'] = 'the config of the run'
        path = write_report(out_dir, info)
        runner.logger.info(f'test report: {path} (run facts: {out_dir / RUN_INFO_NAME})')
