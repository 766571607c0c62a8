"""``ReportHook``: ``mim test … --out DIR`` also writes ``DIR/report.html`` (:mod:`mmseg_medical.report`).

Enable it for one run without touching the config::

    mim test mmseg CONFIG --checkpoint CKPT --out DIR --cfg-options default_hooks.report.type=ReportHook

or in a config: ``default_hooks = dict(report=dict(type='ReportHook'))`` (merged into the default hooks, so
the ``custom_hooks`` of the base configs stay). Before the test it checks that a
``VolumeMetric`` will write ``DIR/volumes`` (else the run stops at once with one error line); after the test it
writes ``DIR/run.json`` (config, checkpoint, protocol, prepared dataset, test split list, work dir, log: what
``tools/report.py DIR`` reads back) and the report, both atomically, on the main process only.
"""
from __future__ import annotations

import json
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

    def after_test_epoch(self, runner, metrics=None) -> None:
        if not is_main_process():
            return
        from .report import RUN_INFO_NAME, RunInfo, write_report, write_text_atomic

        out_dir = self._out_dir(runner)
        metric = _volume_metric(runner)
        dataset = runner.test_dataloader.dataset
        data_root = metric.data_root or getattr(dataset, 'data_root', None)
        info = RunInfo()
        source = 'the mim test run (ReportHook)'
        info.set('config', runner.cfg.filename and os.path.abspath(runner.cfg.filename), source)
        info.set('checkpoint', runner.cfg.get('load_from'), source)
        info.set('protocol', metric.protocol, source)
        info.set('data_root', data_root and os.path.abspath(data_root), source)
        info.set('split_file', getattr(dataset, 'ann_file', None) or None, source)
        info.set('work_dir', os.path.abspath(runner.work_dir), source)
        info.set('log', os.path.abspath(os.path.join(runner.log_dir, f'{runner.timestamp}.log')), source)
        info.config_text = runner.cfg.pretty_text
        info.sources['config_text'] = 'the config of the run'
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / RUN_INFO_NAME, json.dumps(info.to_json(), indent=1) + '\n')
        path = write_report(out_dir, info)
        runner.logger.info(f'test report: {path}')
