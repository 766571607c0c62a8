"""Slice-level benchmark runner: train + test configs with mim, collect slice and volume metrics.

``python tools/benchmark.py --configs 'configs/cranium/*.py' --work-dir work_dirs/bench [--cfg-options ...]``
or ``--preset NAME`` (lists of configs, :data:`PRESETS`: ``cranium-lr``, ``cranium-heads``, and a 1-slice config
beside its 2.5D counterpart: ``cranium-2.5d``, ``hemseg-2.5d``, ``hemseg-3w-2.5d``, ``crossmoda-2.5d``,
``crossmoda2023-2.5d``): writes
``results.md`` (run, Method, Backbone, Crop Size, lr, input, mIoU, mDice, volume Dice/NSD in %, HD95 in mm),
``results.csv`` and ``results.png`` (:func:`results_figure`: one panel per metric, one bar per run). Each run is
named by the part of its config name that differs from the others' (:func:`run_labels`), the same in the
table, the CSV and the chart. ``--protocol NAME`` scores the volume metrics of every test under that
evaluation protocol (:mod:`mmseg_medical.evaluation.protocols`).

Fold presets (:data:`FOLD_PRESETS`) run the CT-ICH dataset paper's 5-fold cross-validation (``--preset
cranium-paper``: one model per ``--folds 5`` fold of a prepared Cranium, each tested on its held-out patients,
patients without hemorrhage left out, beside the paper's U-Net Dice 0.31) and the COVID-19-CT-Seg benchmark's
tasks (``--preset covid19-task1-separate``
and the others; ``covid19-task1-2.5d``: the joint model on one slice and on 2.5D, one table and chart): every
model of the task on every official fold (Task 2: its one split), each test case scored in 3D under the preset's
protocol (``covid19``: the benchmark's evaluation script), ``--mosmed DIR`` also on the 50 MosMed cases; writes
``fold_cases.csv`` (one row per fold, case and class) and ``fold_table.{md,csv,png}``: per fold mean ± std over
its test cases, the ``all`` row over every (fold, case) pooled (the benchmark's Avg rows) and the published 2D and
3D U-Net rows beside them; models compared with the same published rows also side by side in one table and one
chart panel (:func:`fold_figure`).

Runs are sequential and resumable. A training run is keyed on the config file name *and* the
``--cfg-options`` values as mmengine parses them (:func:`run_key`: ``scale='(64,64)'`` and ``scale=(64,64)`` are one
run): it lives in ``<work-dir>/<config stem>-<key>/`` (``key`` = 8 hex digits of the SHA-1 of both, written out in
``run_key.json``), so the same config with other override values is a new run. A finished
training (``train.done``) is not repeated; a test whose result exists with the same test options
(protocol, MosMed folder) is not repeated.
"""
from __future__ import annotations

import argparse
import copy
import csv
import functools
import glob
import hashlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import MedSegError
from .benchmark_executors import (InProcessExecutor, LocalExecutor, SlurmExecutor, Unit, now_iso)
from .runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run

REPO = Path(__file__).resolve().parents[2]
def counterpart_2_5d(config: str) -> str:
    """The 2.5D config beside a 1-slice one: ``-2.5d`` before the crop size (``…_cranium-512x512.py`` →
    ``…_cranium-2.5d-512x512.py``)."""
    head, crop = config[:-len('.py')].rsplit('-', 1)
    return f'{head}-2.5d-{crop}.py'


#: Presets of a 1-slice config and its 2.5D counterpart (neighbouring slices as channels), side by side.
PAIRS_2_5D = {
    'cranium-2.5d': 'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py',
    'hemseg-2.5d': 'configs/hemseg/fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-512x512.py',
    'hemseg-3w-2.5d': 'configs/hemseg/fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-3w-512x512.py',
    'crossmoda-2.5d': 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py',
    'crossmoda2023-2.5d': 'configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda2023-256x256.py',
}
PRESETS: Dict[str, List[str]] = {
    'cranium-lr': [f'configs/cranium/fcn-unet-s5-d16_unet_1xb16-{lr}-20k_cranium-512x512.py'
                   for lr in ('0.01', '0.001', '0.0001')],
    'cranium-heads': [f'configs/cranium/{head}-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
                      for head in ('fcn', 'pspnet', 'deeplabv3')],
    **{name: [config, counterpart_2_5d(config)] for name, config in PAIRS_2_5D.items()},
}


#: (column title, key in the test metrics, digits, unit): mmseg's IoUMetric and VolumeMetric give IoU, Dice and
#: NSD in % (0-100) and distances in mm.
COLUMNS = [('mIoU', 'mIoU', 2, '%'), ('mDice', 'mDice', 2, '%'), ('vol. Dice', 'volume/mDice', 2, '%'),
           ('vol. NSD', 'volume/mNSD', 2, '%'), ('vol. HD95', 'volume/mHD95', 2, 'mm')]


def column_title(title: str, unit: str) -> str:
    """``mIoU (%)``, ``vol. HD95 (mm)``: a table column or chart tick with its unit."""
    return f'{title} ({unit})'


def resolve_configs(patterns: Sequence[str]) -> List[Path]:
    """Expand globs (relative to the cwd, then the repo), keep order, drop duplicates and ``_base_``."""
    found: List[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or sorted(glob.glob(str(REPO / pattern)))
        if not matches:
            raise FileNotFoundError(f'{pattern}: no config matches')
        for m in matches:
            path = Path(m).resolve()
            if '_base_' not in path.parts and path not in found:
                found.append(path)
    return found


def describe(config: Path, cfg_options: Sequence[str]) -> dict:
    """Method, backbone, crop size, lr and input (one slice or which neighbours) of a config after the overrides."""
    cfg = load_config(config, cfg_options)
    size = cfg.model.get('data_preprocessor', {}).get('size') or cfg.get('img_scale') or cfg.get('crop_size')
    head = cfg.model.decode_head
    head = head[0] if isinstance(head, (list, tuple)) else head
    return {'config': config.name, 'method': config.stem.split('_')[0],
            'backbone': str(cfg.model.backbone.type).lower(), 'head': head.type,
            'crop_size': 'x'.join(str(s) for s in size) if size else '',
            'lr': cfg.optim_wrapper.optimizer.lr, 'input': input_description(cfg)}


def input_description(cfg) -> str:
    """What the test pipeline feeds the model: ``slice k`` (``LoadImageFromFile``) or ``slices k-1,k,k+1``
    (``LoadSliceStack``, with ``× windows 0,1,2`` when it picks stored channels)."""
    pipeline = (cfg.get('test_dataloader') or {}).get('dataset', {}).get('pipeline') or []
    load = next((step for step in pipeline if str(step.get('type', '')).startswith('Load')), {})
    if load.get('type') != 'LoadSliceStack':
        return 'slice k'
    offsets = load.get('offsets', (-1, 0, 1))
    text = 'slices ' + ','.join('k' if o == 0 else f'k{o:+d}' for o in offsets)
    windows = load.get('windows')
    return text + (f' × windows {",".join(map(str, windows))}' if windows else '')


_TOKEN = re.compile(r'[_-]?[^_-]+')


def _tokens(name: str) -> List[str]:
    """A config name's parts, each with the ``_`` or ``-`` before it: ``a-b_c.py`` → ``a``, ``-b``, ``_c``."""
    return _TOKEN.findall(name[:-3] if name.endswith('.py') else name)


def _lcs(a: Sequence[str], b: Sequence[str]) -> List[str]:
    """A longest common subsequence of two token lists."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _slots(tokens: Sequence[str], common: Sequence[str]) -> List[List[str]]:
    """``tokens`` cut at the tokens of ``common`` (matched left to right): ``len(common) + 1`` runs of own tokens."""
    slots: List[List[str]] = [[]]
    k = 0
    for t in tokens:
        if k < len(common) and t == common[k]:
            slots.append([])
            k += 1
        else:
            slots[-1].append(t)
    return slots


def _differing_spans(toks: Sequence[Sequence[str]]) -> List[str]:
    """Each token list without the prefix and suffix all share (widened by one shared token while one is empty)."""
    shortest = min(len(t) for t in toks)
    p = 0
    while p < shortest and all(t[p] == toks[0][p] for t in toks):
        p += 1
    q = 0
    while q < shortest - p and all(t[-1 - q] == toks[0][-1 - q] for t in toks):
        q += 1
    while p + q and any(len(t) == p + q for t in toks):
        p, q = (p - 1, q) if p else (p, q - 1)
    return [''.join(t[p:len(t) - q]).lstrip('_-') for t in toks]


def run_labels(names: Sequence[str]) -> List[str]:
    """The shortest readable label of each config of one run that tells it from the others: the parts of its
    name that differ from the others' (``0.01`` / ``0.001``; ``fcn`` / ``pspnet``), shared parts between them
    shown as ``…`` (``0.01…3w``); when one name has nothing of its own, every label starts with the shared part
    before the difference (``hemseg`` / ``hemseg-3w``). Labels are unique: names that would still collide (the
    same file name in two folders) are numbered ``#1``, ``#2``."""
    names = [Path(n).name for n in names]
    toks = [_tokens(n) for n in names]
    if len(names) == 1:
        labels = [toks[0][0].lstrip('_-') if toks[0] else names[0]]
    else:
        common = toks[0]
        for t in toks[1:]:
            common = _lcs(common, t)
        slots = [_slots(t, common) for t in toks]
        differ = [k for k in range(len(common) + 1) if len({tuple(s[k]) for s in slots}) > 1]
        if any(not any(s[k] for k in differ) for s in slots):  # a name with nothing of its own: add context,
            for k in differ:  # the shared name field before the difference (``_hemseg``, ``fcn-unet-s5-d16``)
                j = k - 1
                while j > 0 and not common[j].startswith('_') and j not in differ:
                    j -= 1
                for s in slots:
                    s[k] = [*common[j:k], *s[k]] if k > 0 else [*s[k], common[0]]
        labels = ['…'.join(''.join(s[k]).lstrip('_-') for k in differ if s[k]) for s in slots]
        if len(set(labels)) < len(labels):  # the same own parts in other places: each name's differing span
            labels = _differing_spans(toks)
    seen: Dict[str, int] = {}
    out = []
    for label in labels:
        label = label or '(empty)'
        seen[label] = seen.get(label, 0) + 1
        out.append(label if labels.count(label) == 1 else f'{label} #{seen[label]}')
    return out


def parsed_options(cfg_options: Sequence[str]) -> Dict[str, object]:
    """``--cfg-options`` items as mmengine's ``DictAction`` gives them to the config: ``KEY=VALUE`` split at the
    first ``=``, quotes stripped, numbers, booleans, ``None``, lists and tuples parsed, a later item for the same
    key replacing an earlier one. ``scale='(64,64)'`` and ``scale=(64, 64)`` are the same ``(64, 64)``."""
    from mmengine.config import DictAction

    options: Dict[str, object] = {}
    for item in cfg_options:
        key, sep, value = str(item).partition('=')
        if not sep:
            raise MedSegError('--cfg-options', f'expected KEY=VALUE, got {item!r}')
        try:
            options[key] = DictAction._parse_iterable(value)
        except AssertionError as exc:  # DictAction's check of balanced brackets
            raise MedSegError('--cfg-options', f'{item}: {exc}') from None
    return options


def run_key(config: Path, cfg_options: Sequence[str]) -> dict:
    """What identifies a run: the config file name and the overrides as parsed (:func:`parsed_options`), one
    ``KEY=repr(value)`` each in the order mmengine applies them, so spellings of the same values (quoting,
    spaces) are one run and any other value (``(64, 64)`` vs ``[64, 64]``, ``1`` vs ``1.0``) another."""
    return {'config': config.name, 'cfg_options': [f'{k}={v!r}' for k, v in parsed_options(cfg_options).items()]}


def run_dir_for(work_dir: Path, config: Path, cfg_options: Sequence[str]) -> Path:
    """``<work_dir>/<config stem>-<8 hex digits of the SHA-1 of run_key>``."""
    text = json.dumps(run_key(config, cfg_options), sort_keys=True)
    return work_dir / f'{config.stem}-{hashlib.sha1(text.encode()).hexdigest()[:8]}'


@functools.lru_cache(maxsize=None)
def _config_file(path: str, mtime_ns: int):
    from mmengine.config import Config

    return Config.fromfile(path)  # ~1 s: mmseg:: base configs are looked up in its model index


def load_config(config: Path, cfg_options: Sequence[str]):
    """The mmengine Config of ``config`` after the ``--cfg-options`` overrides (files parsed once per process)."""
    from mmengine.config import DictAction

    cfg = copy.deepcopy(_config_file(str(config), Path(config).stat().st_mtime_ns))
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    return cfg


def protocol_option(config: Path, cfg_options: Sequence[str], protocol: str) -> str:
    """The ``--cfg-options`` item that sets the test evaluator's VolumeMetric (or subclass) to ``protocol``."""
    from .evaluation.protocols import get_protocol

    get_protocol(protocol)  # unknown names fail here, naming the registered ones
    evaluator = load_config(config, cfg_options).get('test_evaluator')
    metrics, prefix = ((evaluator.get('metrics'), 'test_evaluator.metrics') if isinstance(evaluator, Mapping)
                       else (evaluator, 'test_evaluator'))
    if isinstance(metrics, Mapping):
        metrics, prefix = [metrics], None
    for i, metric in enumerate(metrics or []):
        if str(metric.get('type', '')).endswith('VolumeMetric'):
            return f'{prefix}.{i}.protocol={protocol}' if prefix else f'test_evaluator.protocol={protocol}'
    raise RuntimeError(f'{config.name}: no VolumeMetric in test_evaluator, so --protocol {protocol} has nothing to set')


def _claim(run_dir: Path, config: Path, cfg_options: Sequence[str]) -> None:
    key = run_key(config, cfg_options)
    key_path = run_dir / 'run_key.json'
    if key_path.is_file() and json.loads(key_path.read_text()) != key:
        raise RuntimeError(f'{run_dir} belongs to another run ({key_path}); remove it or use another --work-dir')
    run_dir.mkdir(parents=True, exist_ok=True)
    key_path.write_text(json.dumps(key, indent=1) + '\n')


def train_command(config: Path, train_dir: Path, cfg_options: Sequence[str], gpus: int, tasks: int = 1,
                  launcher: str = 'local') -> List[str]:
    """The training command of one run: ``mim train`` (one process, ``--gpus``), or DDP over ``tasks`` processes
    with ``tools/train.py``: Slurm's tasks (``srun``, mmengine's slurm launcher; gloo on a CPU-only torch) or
    ``torchrun`` on this machine."""
    if tasks <= 1:
        return mim_train(config, train_dir, cfg_options, ['--gpus', str(gpus)])
    train_py = str(REPO / 'tools' / 'train.py')
    if launcher == 'slurm':
        head = ['srun', f'--ntasks={tasks}', '--kill-on-bad-exit=1', sys.executable, train_py]
        how = 'slurm'
    else:
        import socket
        with socket.socket() as s:  # a free port for this run's rendezvous
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        head = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={tasks}', f'--master_port={port}',
                train_py]
        how = 'pytorch'
    cmd = [*head, str(config), '--work-dir', str(train_dir), '--launcher', how]
    return cmd + (['--cfg-options', *cfg_options] if cfg_options else [])


def train_once(config: Path, work_dir: Path, cfg_options: Sequence[str], gpus: int, tasks: int = 1,
               launcher: str = 'local') -> Tuple[Path, Path]:
    """Train ``config`` with ``cfg_options`` unless that run finished before; returns (run dir, checkpoint)."""
    run_dir = run_dir_for(work_dir, config, cfg_options)
    _claim(run_dir, config, cfg_options)
    train_dir = run_dir / 'train'
    if not (run_dir / 'train.done').is_file():
        print(f'train {config.name} (log: {train_dir / "mim_train.log"})')
        run(train_command(config, train_dir, cfg_options, gpus, tasks, launcher), log=train_dir / 'mim_train.log',
            cwd=REPO)
        (run_dir / 'train.done').write_text(str(last_checkpoint(train_dir)))
    return run_dir, Path((run_dir / 'train.done').read_text().strip())


def how_it_ran(launcher: str, job_id: Optional[str], started: str) -> dict:
    """The ``result.json`` fields that record how a run ran: launcher, Slurm job id, host, start and end."""
    import socket
    return {'launcher': launcher, 'job_id': job_id, 'host': socket.gethostname(), 'started': started,
            'finished': now_iso()}


def write_json(path: Path, data: dict) -> None:
    """``path`` written whole or not at all (a temporary file renamed over it)."""
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def run_one(config: Path, work_dir: Path, cfg_options: Sequence[str], gpus: int,
            test_options: Sequence[str] = (), tasks: int = 1, launcher: str = 'local',
            job_id: Optional[str] = None) -> dict:
    """Train (unless done) and test one config with ``cfg_options`` (the test also with ``test_options``);
    returns and stores ``result.json`` (with :func:`how_it_ran`). A stored result with the same test options is
    returned as is."""
    run_dir = run_dir_for(work_dir, config, cfg_options)
    result_path = run_dir / 'result.json'
    if result_path.is_file():
        stored = json.loads(result_path.read_text())
        if stored.get('test_options', []) == list(test_options):
            print(f'skip {config.name}: {result_path} exists (same config, --cfg-options and test options)')
            return stored
    started, start = now_iso(), time.perf_counter()
    run_dir, checkpoint = train_once(config, work_dir, cfg_options, gpus, tasks, launcher)
    info = describe(config, cfg_options)
    test_dir = run_dir / 'test'
    print(f'test  {config.name}')
    run(mim_test(config, checkpoint, test_dir, [*cfg_options, *test_options], ['--gpus', str(min(gpus, 1))]),
        log=test_dir / 'mim_test.log', cwd=REPO)
    result = {**info, 'checkpoint': str(checkpoint), 'metrics': read_test_metrics(test_dir),
              'seconds': round(time.perf_counter() - start, 1)}
    if test_options:
        result['test_options'] = list(test_options)
    result.update(how_it_ran(launcher, job_id, started))
    write_json(result_path, result)
    return result


# ---- runs as units an executor can start anywhere ----------------------------------------------------------------
#: What a failed run raises (reported with the run's name; the other runs go on).
RUN_ERRORS = (RuntimeError, KeyError, MedSegError, FileNotFoundError, OSError)


def config_unit(config: Path, work_dir: Path, cfg_options: Sequence[str], gpus: int,
                test_options: Sequence[str] = (), tasks: int = 1) -> Unit:
    """Train + test of one config (:func:`run_one`) as a :class:`Unit`; done when its ``result.json`` has the
    same test options."""
    run_dir = run_dir_for(work_dir, config, cfg_options)
    spec = {'kind': 'config', 'config': str(config), 'work_dir': str(work_dir), 'cfg_options': list(cfg_options),
            'gpus': gpus, 'tasks': tasks, 'test_options': list(test_options)}

    def done() -> bool:
        path = run_dir / 'result.json'
        return path.is_file() and json.loads(path.read_text()).get('test_options', []) == list(test_options)
    return Unit(config.name, run_dir, spec, done)


def fold_unit(config: Path, work_dir: Path, cfg_options: Sequence[str], gpus: int, fold: int,
              tests: Mapping[str, Sequence[str]], classes: Sequence[str], tasks: int = 1) -> Unit:
    """One model of one fold of a fold preset (:func:`run_fold_model`) as a :class:`Unit`; done when its
    ``result.json`` names the same tests and each test's ``cases.csv`` is there."""
    run_dir = run_dir_for(work_dir, config, cfg_options)
    tests = {k: list(v) for k, v in tests.items()}
    spec = {'kind': 'fold', 'config': str(config), 'work_dir': str(work_dir), 'cfg_options': list(cfg_options),
            'gpus': gpus, 'tasks': tasks, 'fold': fold, 'tests': tests, 'classes': list(classes)}

    def done() -> bool:
        path = run_dir / 'result.json'
        return (path.is_file() and json.loads(path.read_text()).get('tests') == tests
                and all((run_dir / f'test-{t}' / 'cases.csv').is_file() for t in tests))
    return Unit(f'{config.name} fold {fold}', run_dir, spec, done)


def run_fold_model(config: Path, work_dir: Path, cfg_options: Sequence[str], gpus: int, fold: int,
                   tests: Mapping[str, Sequence[str]], classes: Sequence[str], tasks: int = 1,
                   launcher: str = 'local', job_id: Optional[str] = None) -> Dict[str, List[dict]]:
    """Train one fold's model (unless done) and test it on each test set (``tests``: test set → its test
    options); stores ``result.json`` (the tests, :func:`how_it_ran`) and returns {test set: per-case rows}."""
    started, start = now_iso(), time.perf_counter()
    run_dir, checkpoint = train_once(config, work_dir, cfg_options, gpus, tasks, launcher)
    rows = {test_set: test_once(config, run_dir, checkpoint, test_set, cfg_options, extra, classes, min(gpus, 1))
            for test_set, extra in tests.items()}
    write_json(run_dir / 'result.json', {'config': config.name, 'fold': fold, 'checkpoint': str(checkpoint),
                                         'tests': {k: list(v) for k, v in tests.items()},
                                         'seconds': round(time.perf_counter() - start, 1),
                                         **how_it_ran(launcher, job_id, started)})
    return rows


def execute_unit(spec: Mapping, launcher: str = 'local', job_id: Optional[str] = None) -> None:
    """Run the unit a spec describes (:func:`config_unit`, :func:`fold_unit`) here: what every executor runs."""
    common = dict(config=Path(spec['config']), work_dir=Path(spec['work_dir']), cfg_options=spec['cfg_options'],
                  gpus=spec['gpus'], tasks=spec.get('tasks', 1), launcher=launcher, job_id=job_id)
    if spec['kind'] == 'config':
        run_one(test_options=spec['test_options'], **common)
    elif spec['kind'] == 'fold':
        run_fold_model(fold=spec['fold'], tests=spec['tests'], classes=spec['classes'], **common)
    else:
        raise KeyError(f'unknown run kind {spec["kind"]!r}')


def execute(units: Sequence[Unit], executor) -> List[Unit]:
    """The units not done yet run on ``executor`` (done ones are skipped, saying so); returns the failed ones."""
    pending, seen = [], set()
    for unit in units:
        if unit.run_dir in seen:  # the same model in two experiments: one run
            continue
        seen.add(unit.run_dir)
        if unit.done():
            print(f'skip {unit.label}: {unit.run_dir / "result.json"} exists (same config, --cfg-options and test '
                  'options)')
        else:
            pending.append(unit)
    return executor.run(pending) if pending else []


def _cell(metrics: dict, key: str, digits: int) -> str:
    value = metrics.get(key)
    return '–' if value is None else f'{value:.{digits}f}'


def write_results(results: Sequence[dict], work_dir: Path, protocol: Optional[str] = None) -> List[Path]:
    """``results.md``, ``results.csv`` and the chart ``results.png`` (:func:`results_figure`); each run named by
    its label (:func:`run_labels`) in all three; returns the written paths."""
    labels = run_labels([r['config'] for r in results])
    head = ['run', 'Method', 'Backbone', 'Crop Size', 'lr', 'input'] + [column_title(c[0], c[3]) for c in COLUMNS]
    lines = ['| ' + ' | '.join(head + ['config']) + ' |', '|' + '---|' * 6 + '---:|' * len(COLUMNS) + '---|']
    for label, r in zip(labels, results):
        cells = [f'**{label}**', r['method'], r['backbone'], r['crop_size'], f"{r['lr']:g}", r.get('input', '')]
        cells += [_cell(r['metrics'], key, d) for _, key, d, _ in COLUMNS] + [f"`{r['config']}`"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    note = ('\nrun: the part of the config names that differs. mIoU/mDice: mmseg IoUMetric, pixels pooled over all '
            'test slices, in % (0-100). vol.: per-case 3D metrics (VolumeMetric) averaged over cases and foreground '
            'classes, Dice and NSD in % (0-100), HD95 in mm; '
            + (f'protocol `{protocol}` for every test.\n' if protocol else 'protocol as each config says.\n'))
    md = work_dir / 'results.md'
    md.write_text('\n'.join(lines) + '\n' + note)
    out = work_dir / 'results.csv'
    with open(out, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['run', 'config', 'method', 'backbone', 'crop_size', 'lr', 'input']
                        + [k for _, k, _, _ in COLUMNS] + ['seconds'])
        for label, r in zip(labels, results):
            writer.writerow([label, r['config'], r['method'], r['backbone'], r['crop_size'], r['lr'],
                             r.get('input', '')]
                            + [r['metrics'].get(k, '') for _, k, _, _ in COLUMNS] + [r.get('seconds', '')])
    chart = work_dir / 'results.png'
    fig = results_figure(results, labels)
    fig.savefig(chart, dpi=110)
    return [md, out, chart]


#: Colours of the runs, in order (matplotlib's tab10, then tab20's light shades).
RUN_COLOURS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
               '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7')


def axis_title(title: str, unit: str, top: Optional[float] = None) -> str:
    """``vol. Dice (%, 0–100)``, ``vol. HD95 (mm, 0–12.5)``: a chart axis with the metric, unit and range."""
    return f'{title} ({unit}, 0–{100 if unit == "%" else f"{top:.3g}"})'


def results_figure(results: Sequence[dict], labels: Optional[Sequence[str]] = None):
    """The comparison chart as a matplotlib ``Figure``: one panel per metric of :data:`COLUMNS` that any run has,
    one bar per run at its own x position (its label under it, its colour in the legend), the value on the
    bar, the y axis named with the metric, its unit and range (% on 0–100, mm from 0)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    labels = list(labels) if labels is not None else run_labels([r['config'] for r in results])
    shown = [c for c in COLUMNS if any(r['metrics'].get(c[1]) is not None for r in results)]
    cells = len(shown) + 1  # the last cell holds the legend
    ncols = min(3, cells)
    nrows = -(-cells // ncols)
    n = len(results)
    colours = [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(n)]
    rotate = n > 2 or max(len(label) for label in labels) > 12
    panel_w = max(2.6, 0.9 + 0.55 * n)
    fig = Figure(figsize=(panel_w * ncols, (3.4 if rotate else 2.9) * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    x = list(range(n))
    for ax, (title, key, digits, unit) in zip(axes, shown):
        values = [r['metrics'].get(key) for r in results]
        present = [v for v in values if v is not None]
        top = 100.0 if unit == '%' else (max(present) * 1.2 if max(present) > 0 else 1.0)
        top = max(top, max(present))
        for i, v in enumerate(values):
            if v is None:
                ax.text(i, 0.02 * top, 'n/a', ha='center', va='bottom', fontsize=7, color='#555555')
                continue
            ax.bar(i, v, 0.7, color=colours[i])
            inside = v > 0.85 * top
            ax.text(i, v - 0.02 * top if inside else v + 0.02 * top, f'{v:.{digits}f}', ha='center',
                    va='top' if inside else 'bottom', fontsize=7, color='white' if inside else 'black')
        ax.set_ylim(0, top)
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylabel(axis_title(title, unit, top), fontsize=8)
        ax.set_title(title + (' (lower is better)' if unit == 'mm' else ' (higher is better)'), fontsize=9)
        ax.set_xticks(x, labels, fontsize=7, rotation=30 if rotate else 0, ha='right' if rotate else 'center')
        ax.tick_params(axis='y', labelsize=7)
        ax.grid(axis='y', alpha=0.3)
        ax.set_axisbelow(True)
    for ax in axes[len(shown):]:
        ax.axis('off')
    axes[len(shown)].legend(handles=[Patch(color=c, label=label) for c, label in zip(colours, labels)],
                            title='run', loc='center', fontsize=8, title_fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


# ---- fold presets: the COVID-19-CT-Seg benchmark's tasks ---------------------------------------------------------
#: Test sets of the fold presets: the preset's COVID-19-CT-Seg test lists, and MosMed (``--mosmed``).
TEST_SETS = {'covid19': 'COVID-19-CT-Seg', 'mosmed': 'MosMed', 'cranium': 'CT-ICH'}
FOLD_METRICS = (('dice', 'DSC'), ('nsd', 'NSD'))
#: (mean, std) in % per (test set, class) and metric.
Values = Dict[Tuple[str, str], Dict[str, Tuple[float, float]]]


def published(left_lung=None, right_lung=None, infection=None, mosmed=None) -> Values:
    """A published row from its cells as printed (DSC mean, DSC std, NSD mean, NSD std), in %."""
    out: Values = {}
    for key, cell in ((('covid19', 'left_lung'), left_lung), (('covid19', 'right_lung'), right_lung),
                      (('covid19', 'infection'), infection), (('mosmed', 'infection'), mosmed)):
        if cell is not None:
            out[key] = {'dice': (cell[0], cell[1]), 'nsd': (cell[2], cell[3])}
    return out


#: The benchmark README's result table (github.com/JunMa11/COVID-19-CT-Seg-Benchmark, README.md at b87e054:
#: nnU-Net 2D and 3D U-Net baselines; left / right lung and infection on COVID-19-CT-Seg, infection on MosMed;
#: mean ± std over all test cases of all folds, in %).
PUBLISHED: Dict[str, Values] = {
    '2D U-Net Task1-Separate': published((95.1, 7.9, 84.6, 12.7), (95.6, 7.4, 85.5, 12.8), (60.9, 24.5, 61.5, 27.0),
                                         (53.7, 21.4, 61.5, 21.2)),
    '2D U-Net Task1-Union': published((87.3, 15.8, 70.5, 18.7), (89.4, 12.8, 71.0, 17.8), (57.7, 26.3, 57.2, 29.0),
                                      (52.2, 21.6, 46.2, 18.3)),
    '2D U-Net Task2-MSD': published(None, None, (7.9, 11.5, 12.9, 15.3), (7.6, 15.8, 9.9, 17.1)),
    '2D U-Net Task2-StructSeg': published((46.3, 47.6, 28.4, 31.7), (45.3, 46.7, 28.0, 31.3), (0.2, 0.8, 0.6, 1.6),
                                          (1.9, 10.1, 2.2, 10.0)),
    '2D U-Net Task2-NSCLC': published((47.3, 48.6, 37.9, 40.1), (47.6, 48.9, 38.0, 40.2), (1.2, 2.9, 7.3, 9.7),
                                      (0.0, 0.0, 1.0, 1.9)),
    '2D U-Net Task3-MSD': published((96.9, 4.9, 89.8, 9.1), (97.1, 4.9, 89.8, 9.1), (51.2, 26.8, 52.7, 27.4),
                                    (24.1, 23.5, 29.0, 24.5)),
    '2D U-Net Task3-StructSeg': published((96.3, 7.6, 88.7, 10.8), (96.7, 7.0, 89.0, 11.6), (57.4, 26.6, 57.3, 28.4),
                                          (48.2, 23.1, 55.0, 23.6)),
    '2D U-Net Task3-NSCLC': published((92.5, 17.3, 82.5, 18.6), (93.3, 15.9, 82.9, 18.6), (52.5, 29.6, 52.6, 30.3),
                                      (31.7, 24.6, 38.9, 25.9)),
    '3D U-Net Task1-Separate': published((85.8, 10.5, 71.2, 13.8), (87.9, 9.3, 74.8, 11.9), (67.3, 22.3, 70.0, 24.4),
                                         (58.8, 20.6, 66.4, 20.3)),
    '3D U-Net Task1-Union': published((64.6, 26.4, 51.1, 23.4), (75.0, 16.8, 57.7, 17.4), (61.0, 26.2, 61.8, 27.4),
                                      (48.2, 22.1, 41.4, 19.1)),
    '3D U-Net Task2-MSD': published(None, None, (25.2, 27.4, 26.0, 28.5), (16.2, 23.2, 17.5, 23.4)),
    '3D U-Net Task2-StructSeg': published((92.2, 19.7, 82.0, 15.7), (95.5, 7.2, 84.2, 11.6), (6.0, 12.7, 5.5, 10.7),
                                          (2.6, 9.5, 3.3, 9.9)),
    '3D U-Net Task2-NSCLC': published((57.5, 21.5, 46.9, 17.0), (72.2, 15.3, 51.7, 16.8), (0.4, 0.9, 3.7, 4.8),
                                      (0.0, 0.0, 0.5, 1.4)),
    '3D U-Net Task3-MSD': published((96.5, 2.8, 87.9, 7.9), (96.9, 2.2, 88.5, 7.1), (62.3, 25.7, 61.3, 27.6),
                                    (39.2, 30.6, 41.3, 30.5)),
    '3D U-Net Task3-StructSeg': published((97.3, 2.1, 90.6, 6.2), (97.7, 2.1, 91.4, 6.1), (64.2, 24.5, 63.3, 25.7),
                                          (44.3, 25.3, 49.1, 25.8)),
    '3D U-Net Task3-NSCLC': published((93.5, 5.4, 76.9, 13.3), (94.0, 5.3, 77.2, 14.1), (60.2, 25.4, 58.5, 26.7),
                                      (30.1, 26.7, 33.4, 27.1)),
    # Hssayeni et al., Data 2020, 5(1):14 (the CT-ICH dataset paper), abstract: U-Net, ICH Dice 0.31 under 5-fold
    # cross-validation; no std and no NSD published.
    'U-Net (Hssayeni et al. 2020)': {('cranium', 'hemorrhage'): {'dice': (31.0, math.nan)}},
}


@dataclass(frozen=True)
class Model:
    """One model of a fold preset: its config, the subtask its dataset reads (which classes it scores) and the
    ``--cfg-options`` templates that select fold ``{k}``'s lists and point its test loader at MosMed (``{mosmed}``;
    empty: no MosMed test)."""

    config: str
    subtask: str
    fold_options: Tuple[str, ...] = ()
    mosmed_options: Tuple[str, ...] = ()
    #: the dataset's classes (background first) when it is not a COVID-19-CT-Seg subtask
    class_names: Tuple[str, ...] = ()

    @property
    def classes(self) -> Tuple[str, ...]:
        if self.class_names:
            return self.class_names
        from .conversion.covid19 import subtask_classes
        return tuple(subtask_classes(self.subtask))

    def scored(self, test_set: str) -> Tuple[str, ...]:
        """The classes a test set reports (MosMed labels the infection only)."""
        fg = self.classes[1:]
        return tuple(c for c in fg if c == 'infection') if test_set == 'mosmed' else fg


@dataclass(frozen=True)
class Experiment:
    """A row group of a fold preset: the models trained on one data source and the published rows of that source."""

    name: str
    models: Tuple[Model, ...]
    references: Tuple[str, ...]  # keys of PUBLISHED, 2D first


@dataclass(frozen=True)
class FoldPreset:
    """Models trained and tested on every official fold of a COVID-19-CT-Seg benchmark task, scored under
    ``protocol``, compared with published rows. ``columns``: the (test set, class) columns of its table."""

    title: str
    folds: int
    experiments: Tuple[Experiment, ...]
    columns: Tuple[Tuple[str, str], ...]
    protocol: str = 'covid19'
    note: str = ''
    #: the key of :data:`TEST_SETS` its fold test lists belong to
    test_set: str = 'covid19'
    #: leave out cases whose ground truth of the class is empty (the paper scores hemorrhage patients only)
    exclude_empty_truth: bool = False
    published_note: str = ('the benchmark README\'s nnU-Net 2D and 3D U-Net rows '
                           '(github.com/JunMa11/COVID-19-CT-Seg-Benchmark), mean ± std over all test cases of all folds')


def _cfg(name: str) -> str:
    return f'configs/covid19/fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-{name}-512x512.py'


#: Task 1 folds of a Covid19Dataset config (its train / val / test lists), and MosMed for its test loader.
TASK1_FOLD = ('train_dataloader.dataset.ann_file=splits/task1_fold{k}_train.txt',
              'val_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt',
              'test_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt')
TASK1_MOSMED = ('test_dataloader.dataset.data_root={mosmed}/', 'test_dataloader.dataset.ann_file=splits/test.txt')
#: Task 3 folds of a Covid19MultiSourceDataset config: the source's fold-k lists, the four COVID-19-CT-Seg
#: training cases of Task 1 fold k, and its 16 test cases; MosMed for its (one-source) test loader.
TASK3_FOLD = ('train_dataloader.dataset.sources.0.ann_file=splits/covid19_task3_fold{k}_train.txt',
              'train_dataloader.dataset.sources.1.ann_file=splits/task1_fold{k}_train.txt',
              'val_dataloader.dataset.sources.0.ann_file=splits/covid19_task3_fold{k}_val.txt',
              'test_dataloader.dataset.sources.0.ann_file=splits/task1_fold{k}_test.txt')
SOURCES_MOSMED = ('test_dataloader.dataset.sources.0.root={mosmed}',
                  'test_dataloader.dataset.sources.0.ann_file=splits/test.txt')
LUNGS = (('covid19', 'left_lung'), ('covid19', 'right_lung'))
INFECTION = (('covid19', 'infection'), ('mosmed', 'infection'))
#: (experiment name, config suffix, published row) of the Task 2/3 sources per subtask.
SOURCES = {'lung': (('StructSeg lung', 'lung-structseg', 'StructSeg'), ('NSCLC lung', 'lung-nsclc', 'NSCLC')),
           'infection': (('MSD lung tumour', 'infection-msd', 'MSD'),
                         ('StructSeg gross target volume', 'infection-structseg', 'StructSeg'),
                         ('NSCLC pleural effusion', 'infection-nsclc', 'NSCLC'))}


def _source_preset(task: int, subtask: str) -> FoldPreset:
    experiments = tuple(
        Experiment(name, (Model(_cfg(f'task{task}-{suffix}'), subtask, TASK3_FOLD if task == 3 else (),
                                SOURCES_MOSMED if subtask == 'infection' else ()),),
                   (f'2D U-Net Task{task}-{row}', f'3D U-Net Task{task}-{row}'))
        for name, suffix, row in SOURCES[subtask])
    what = ('train on one non-COVID source, validate in-domain, test on the 20 COVID-19-CT-Seg cases' if task == 2 else
            'train on one non-COVID source + the 4 COVID-19-CT-Seg training cases of fold k, test on its 16')
    return FoldPreset(f'COVID-19-CT-Seg Task {task}, {subtask} subtask: {what}', 5 if task == 3 else 1, experiments,
                      LUNGS if subtask == 'lung' else INFECTION)


_UNION = FoldPreset(
    'COVID-19-CT-Seg Task 1, joint model (Task1-Union): one model of left lung, right lung and infection per fold, '
    'trained on 4 cases, tested on 16', 5,
    (Experiment('joint model', (Model(_cfg('task1'), 'lung_infection', TASK1_FOLD, TASK1_MOSMED),),
                ('2D U-Net Task1-Union', '3D U-Net Task1-Union')),),
    LUNGS + INFECTION)
FOLD_PRESETS: Dict[str, FoldPreset] = {
    'covid19-task1-separate': FoldPreset(
        'COVID-19-CT-Seg Task 1, separate models (Task1-Separate): a lung model (left, right) and an infection model '
        'per fold, each trained on 4 cases, tested on 16', 5,
        (Experiment('lung model + infection model', (Model(_cfg('task1-lung'), 'lung', TASK1_FOLD),
                                                      Model(_cfg('task1-infection'), 'infection', TASK1_FOLD,
                                                            TASK1_MOSMED)),
                    ('2D U-Net Task1-Separate', '3D U-Net Task1-Separate')),),
        LUNGS + INFECTION),
    'covid19-task1-union': _UNION,
    'covid19-task1': FoldPreset(_UNION.title, _UNION.folds, _UNION.experiments, _UNION.columns, _UNION.protocol,
                                note='covid19-task1 is the union preset under its old name: its one joint model '
                                     'compares with the Task1-Union row (it was shown beside Task1-Separate before); '
                                     'use covid19-task1-union, or covid19-task1-separate for a lung and an infection '
                                     'model.'),
    'covid19-task1-2.5d': FoldPreset(
        'COVID-19-CT-Seg Task 1, joint model on one slice vs 2.5D (slices k-1, k, k+1 as its three input channels): '
        'both per fold, trained on 4 cases, tested on 16', 5,
        (_UNION.experiments[0],
         Experiment('2.5D joint model', (Model(_cfg('task1-2.5d'), 'lung_infection', TASK1_FOLD, TASK1_MOSMED),),
                    _UNION.experiments[0].references)),
        LUNGS + INFECTION),
    'covid19-task2-lung': _source_preset(2, 'lung'),
    'covid19-task2-infection': _source_preset(2, 'infection'),
    'covid19-task3-lung': _source_preset(3, 'lung'),
    'covid19-task3-infection': _source_preset(3, 'infection'),
    'cranium-paper': FoldPreset(
        'CT-ICH (Cranium), the dataset paper\'s protocol: 5-fold cross-validation over patients '
        '(prepare with --folds 5), each fold\'s model tested on its held-out patients', 5,
        (Experiment('fcn_unet_s5-d16, lr 0.01', (Model(
            'configs/cranium/fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py', 'cranium',
            ('train_dataloader.dataset.ann_file=splits/fold{k}_train.txt',
             'val_dataloader.dataset.ann_file=splits/fold{k}_val.txt',
             'test_dataloader.dataset.ann_file=splits/fold{k}_val.txt'),
            class_names=('background', 'hemorrhage')),), ('U-Net (Hssayeni et al. 2020)',)),),
        (('cranium', 'hemorrhage'),), protocol='default', test_set='cranium', exclude_empty_truth=True,
        published_note='Hssayeni et al., Data 2020, 5(1):14, abstract: U-Net Dice 0.31 for ICH under 5-fold '
                       'cross-validation (no std, no NSD); its departures from this run: configs/cranium/README.md'),
}
#: fold_cases.csv columns (dice and nsd as fractions, as the protocol's per-case CSV).
CASE_COLUMNS = ('fold', 'case', 'class', 'dice', 'nsd', 'test_set', 'source', 'empty')


def read_case_rows(csv_path: Path, classes: Sequence[str]) -> List[dict]:
    """VolumeMetric's per-case ``metrics.csv`` (class = index into ``classes``) as rows with class names."""
    rows = []
    with open(csv_path, newline='') as f:
        for r in csv.DictReader(f):
            index = int(r['class'])
            if not 0 <= index < len(classes):
                raise RuntimeError(f'{csv_path}: class index {index} outside {list(classes)}')
            rows.append({'case': r['case'], 'class': classes[index], 'dice': float(r['dice']), 'nsd': float(r['nsd']),
                         'empty': r.get('empty') or ''})
    return rows


def test_once(config: Path, run_dir: Path, checkpoint: Path, test_set: str, cfg_options: Sequence[str],
              test_options: Sequence[str], classes: Sequence[str], gpus: int) -> List[dict]:
    """Test ``checkpoint`` on one test set (``mim test --out``) unless the same test was stored; returns the per-case
    rows (``run_dir/test-<test set>/cases.csv``)."""
    test_dir = run_dir / f'test-{test_set}'
    key = {'checkpoint': str(checkpoint), 'test_options': list(test_options)}
    key_path, cases_path = test_dir / 'test_key.json', test_dir / 'cases.csv'
    if cases_path.is_file() and key_path.is_file() and json.loads(key_path.read_text()) == key:
        print(f'skip test {config.name} on {test_set}: {cases_path} exists')
        return read_case_rows(cases_path, classes)
    out = test_dir / 'out'
    print(f'test  {config.name} on {test_set}')
    run(mim_test(config, checkpoint, test_dir, [*cfg_options, *test_options], ['--gpus', str(gpus), '--out', str(out)]),
        log=test_dir / 'mim_test.log', cwd=REPO)
    written = out / 'volumes' / 'metrics.csv'  # SegEvaluator sends a VolumeMetric's files to DIR/volumes
    if not written.is_file():
        raise RuntimeError(f'{written}: mim test --out wrote no per-case rows (is a VolumeMetric in the test_evaluator?)')
    rows = read_case_rows(written, classes)
    with open(cases_path.with_suffix('.tmp'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['case', 'class', 'dice', 'nsd', 'empty'])
        writer.writerows([[r['case'], classes.index(r['class']), repr(r['dice']), repr(r['nsd']), r['empty']]
                          for r in rows])
    cases_path.with_suffix('.tmp').replace(cases_path)
    key_path.write_text(json.dumps(key, indent=1) + '\n')
    return rows


def run_fold_preset(preset: FoldPreset, work_dir: Path, cfg_options: Sequence[str], gpus: int,
                    mosmed: Optional[Path] = None, folds: Optional[Sequence[int]] = None,
                    protocol: Optional[str] = None, name: str = '', executor=None, tasks: int = 1) -> List[Path]:
    """Train every model of ``preset`` on every fold (resumable), test it on the fold's COVID-19-CT-Seg cases and
    (``mosmed``) on MosMed under ``protocol`` (default the preset's); write ``fold_cases.csv`` and the tables.
    Each (fold, model) is one run on ``executor`` (default: one after another in this process); failed runs are
    named in the RuntimeError raised after all the others finished."""
    protocol = protocol or preset.protocol
    folds = list(range(preset.folds)) if folds is None else list(folds)
    bad = [k for k in folds if not 0 <= k < preset.folds]
    if bad:
        raise RuntimeError(f'folds {bad} do not exist (this preset has {preset.folds})')
    planned = []
    for experiment in preset.experiments:
        for k in folds:
            for model in experiment.models:
                config = resolve_configs([model.config])[0]
                options = [*cfg_options, *(o.format(k=k) for o in model.fold_options)]
                tests = {preset.test_set: []}
                if mosmed is not None and model.mosmed_options:
                    tests['mosmed'] = [o.format(mosmed=Path(mosmed).resolve()) for o in model.mosmed_options]
                tests = {t: [*extra, protocol_option(config, [*options, *extra], protocol)]
                         for t, extra in tests.items()}
                unit = fold_unit(config, work_dir, options, gpus, k, tests, model.classes, tasks)
                planned.append((experiment, k, model, unit))
    failed = execute([u for *_, u in planned], executor or InProcessExecutor(execute_unit, RUN_ERRORS))
    if failed:
        raise RuntimeError(f'{len(failed)} run(s) failed: ' + ', '.join(u.label for u in failed))
    rows: List[dict] = []
    for experiment, k, model, unit in planned:
        for test_set in unit.spec['tests']:
            scored = set(model.scored(test_set))
            for r in read_case_rows(unit.run_dir / f'test-{test_set}' / 'cases.csv', model.classes):
                if r['class'] in scored and not (preset.exclude_empty_truth and truth_empty(r)):
                    rows.append({'fold': k, **r, 'test_set': test_set, 'source': experiment.name})
    return write_fold_tables(name, preset, rows, work_dir, protocol, folds, mosmed is not None)


def truth_empty(row: Mapping) -> bool:
    """Whether a per-case row's ground truth of its class is empty (``empty``: both empty or truth empty)."""
    from .evaluation.surface import BOTH_EMPTY, GT_EMPTY
    return row.get('empty') in (BOTH_EMPTY, GT_EMPTY)


def mean_std(values: Sequence[float]) -> Tuple[float, float, int]:
    """(mean, sample std (ddof 1; 0 for one value), n) of the values that are not NaN (NaN: the protocol's
    undefined case, e.g. a class absent from truth and prediction, left out as the benchmark's pandas mean)."""
    kept = [v for v in values if not math.isnan(v)]
    n = len(kept)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(kept) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def fold_summaries(rows: Sequence[dict], folds: Sequence[object]) -> Dict[Tuple[str, object, str, str, str],
                                                                        Tuple[float, float, int]]:
    """{(source, fold or 'all', test set, class, metric): (mean %, std %, n)} of the per-case rows."""
    groups: Dict[Tuple[str, object, str, str, str], List[float]] = {}
    for r in rows:
        for metric, _ in FOLD_METRICS:
            for fold in (r['fold'], 'all'):
                groups.setdefault((r['source'], fold, r['test_set'], r['class'], metric), []).append(100.0 * r[metric])
    return {key: mean_std(values) for key, values in groups.items()}


def _fmt(value: Optional[Tuple[float, float, int]], bold: bool = False) -> str:
    if value is None or value[2] == 0 or math.isnan(value[0]):
        return '–'
    mean = f'**{value[0]:.1f}**' if bold else f'{value[0]:.1f}'
    return mean if math.isnan(value[1]) else f'{mean} ± {value[1]:.1f}'


def write_fold_tables(name: str, preset: FoldPreset, rows: Sequence[dict], work_dir: Path, protocol: str,
                      folds: Sequence[int], mosmed_run: bool) -> List[Path]:
    """``fold_cases.csv`` (the rows) and ``fold_table.md`` / ``.csv`` / ``.png``: per source, per fold mean ± std
    over its test cases, ``all`` = over every (fold, case) pooled, and the published rows."""
    from .evaluation.protocols import get_protocol

    work_dir.mkdir(parents=True, exist_ok=True)
    paths = [work_dir / 'fold_cases.csv', work_dir / 'fold_table.md', work_dir / 'fold_table.csv',
             work_dir / 'fold_table.png']
    with open(paths[0], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(CASE_COLUMNS)
        for r in rows:
            writer.writerow([r['fold'], r['case'], r['class'], repr(r['dice']), repr(r['nsd']), r['test_set'],
                             r['source'], r.get('empty', '')])
    stats = fold_summaries(rows, folds)
    cols = [(t, c, m, title) for t, c in preset.columns for m, title in FOLD_METRICS]
    head = ['fold'] + [f'{TEST_SETS[t]} {c} {title}' for t, c, _, title in cols]
    md = [f'## {preset.title}' + (f' (`{name}`)' if name else ''), '']
    if preset.note:
        md += [f'Note: {preset.note}', '']
    table_rows = [['source', 'test_set', 'fold', 'class', 'metric', 'mean', 'std', 'n']]
    for experiment in preset.experiments:
        md += [f'### {experiment.name}', '', '| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * len(cols)]
        shown = list(folds) if preset.folds > 1 else []
        for fold in [*shown, 'all']:
            cells = [_fmt(stats.get((experiment.name, fold, t, c, m)), bold=fold == 'all') for t, c, m, _ in cols]
            md.append(f'| {"**all**" if fold == "all" else fold} | ' + ' | '.join(cells) + ' |')
            for t, c, m, title in cols:
                value = stats.get((experiment.name, fold, t, c, m))
                if value is not None:
                    table_rows.append([experiment.name, t, fold, c, title, round(value[0], 4), round(value[1], 4),
                                       value[2]])
        for ref in experiment.references:
            values = PUBLISHED[ref]
            cells = [_fmt((*values[(t, c)][m], 1)) if m in values.get((t, c), {}) else '–' for t, c, m, _ in cols]
            md.append(f'| {ref} (published) | ' + ' | '.join(cells) + ' |')
            for t, c, m, title in cols:
                if m in values.get((t, c), {}):
                    table_rows.append([experiment.name, t, ref, c, title, *values[(t, c)][m], ''])
        counts = sorted({(TEST_SETS[t], stats[(experiment.name, 'all', t, c, 'dice')][2])
                         for t, c in preset.columns if (experiment.name, 'all', t, c, 'dice') in stats})
        md += ['', 'Cases pooled in `all`: ' + (', '.join(f'{t} {n}' for t, n in counts) or 'none') + '.', '']
    for group in comparison_groups(preset):
        if len(group) < 2:
            continue
        md += [f'### Side by side (all folds pooled): {" vs ".join(e.name for e in group)}', '',
               '| model | ' + ' | '.join(head[1:]) + ' |', '|---|' + '---:|' * len(cols)]
        for experiment in group:
            cells = [_fmt(stats.get((experiment.name, 'all', t, c, m))) for t, c, m, _ in cols]
            md.append(f'| {experiment.name} | ' + ' | '.join(cells) + ' |')
        for ref in group[0].references:
            values = PUBLISHED[ref]
            cells = [_fmt((*values[(t, c)][m], 1)) if m in values.get((t, c), {}) else '–' for t, c, m, _ in cols]
            md.append(f'| {ref} (published) | ' + ' | '.join(cells) + ' |')
        md.append('')
    rule = get_protocol(protocol)
    avg = ", as the benchmark's Avg rows" if preset.test_set == 'covid19' else ''
    md += [f'Scores: protocol `{protocol}` ({rule.title}; source: {rule.source}); per case in 3D on the source grid, '
           f'DSC and NSD in %. Per fold: mean ± sample std over its test cases; **all**: mean ± sample std over every '
           f'(fold, case) pooled{avg} ({rule.aggregation_rule}). Folds run: '
           f'{", ".join(map(str, folds)) if preset.folds > 1 else "the one official split"}. Published: '
           f'{preset.published_note}.'
           + (' Cases whose ground truth of the class is empty (patients without hemorrhage) are left out.'
              if preset.exclude_empty_truth else '')
           + ('' if mosmed_run or not any(t == 'mosmed' for t, _ in preset.columns)
              else ' MosMed: not run (pass --mosmed DIR, a prepared MosMed).'), '']
    paths[1].write_text('\n'.join(md))
    with open(paths[2], 'w', newline='') as f:
        csv.writer(f).writerows(table_rows)
    _plot_fold_table(preset, stats, cols, paths[3])
    return paths


def comparison_groups(preset: FoldPreset) -> List[List[Experiment]]:
    """The preset's experiments grouped by the published rows they are compared with (in order): experiments of
    one group (e.g. a 1-slice and a 2.5D joint model) share a chart panel and a side-by-side table."""
    groups: Dict[Tuple[str, ...], List[Experiment]] = {}
    for experiment in preset.experiments:
        groups.setdefault(experiment.references, []).append(experiment)
    return list(groups.values())


def fold_figure(preset: FoldPreset, stats: dict, cols: list):
    """The fold table's chart as a matplotlib ``Figure``: one panel per :func:`comparison_groups` group, per
    column (test set, class, metric) one bar for each of its experiments (``all`` row: mean over every (fold,
    case), error bar = sample std) and each published row, side by side at their own x offsets; y axis in %
    on 0–100; a legend naming every bar."""
    from matplotlib.figure import Figure
    import numpy as np

    groups = comparison_groups(preset)
    fig = Figure(figsize=(3.0 + 1.25 * len(cols), 3.2 * len(groups)))
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    x = np.arange(len(cols))
    for ax, group in zip(axes, groups):
        bars = [(f'{e.name} (this run, all)' if len(group) > 1 else 'this run (all)',
                 [stats.get((e.name, 'all', t, c, m)) for t, c, m, _ in cols]) for e in group]
        bars += [(f'{ref} (published)', [(*PUBLISHED[ref][(t, c)][m], 1) if m in PUBLISHED[ref].get((t, c), {}) else None
                                         for t, c, m, _ in cols]) for ref in group[0].references]
        width = 0.8 / len(bars)
        for i, (label, values) in enumerate(bars):
            keep = [j for j, v in enumerate(values) if v and v[2] and not math.isnan(v[0])]
            ax.bar(x[keep] + (i - (len(bars) - 1) / 2) * width, [values[j][0] for j in keep], width,
                   yerr=[0.0 if math.isnan(values[j][1]) else values[j][1] for j in keep], capsize=2,
                   color=RUN_COLOURS[i % len(RUN_COLOURS)], label=label)
        ax.set_xticks(x, [f'{TEST_SETS[t]}\n{c} {title}' for t, c, _, title in cols], fontsize=7)
        ax.set_xlim(-0.5, len(cols) - 0.5)
        ax.set_ylim(0, 100)
        ax.set_ylabel('DSC / NSD (%, 0–100)', fontsize=8)
        ax.set_title(' vs '.join(e.name for e in group), fontsize=9)
        ax.grid(axis='y', alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _plot_fold_table(preset: FoldPreset, stats: dict, cols: list, path: Path) -> None:
    fold_figure(preset, stats, cols).savefig(path, dpi=110)


def make_executor(args: argparse.Namespace, tasks: int):
    """The executor the options ask for: in this process (``--jobs 1``), ``--jobs K`` processes, or Slurm jobs."""
    if args.launcher == 'slurm':
        import shlex
        return SlurmExecutor(args.partition, args.gpus, tasks, args.cpus_per_run, args.max_jobs,
                             shlex.split(args.slurm_args), repo=REPO)
    if args.jobs > 1:
        devices = list(range(_cuda_devices())) if args.gpus else []
        return LocalExecutor(args.jobs, args.gpus, devices)
    return InProcessExecutor(execute_unit, RUN_ERRORS)


def _cuda_devices() -> int:
    import torch
    return torch.cuda.device_count()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='benchmark.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--configs', nargs='+', help='config files or globs')
    group.add_argument('--preset', choices=sorted(PRESETS) + sorted(FOLD_PRESETS),
                       help='a shipped list of configs (' + ', '.join(sorted(PRESETS)) + ') or a fold preset: the '
                            "CT-ICH paper's 5-fold cross-validation or a COVID-19-CT-Seg benchmark task on its "
                            'official folds (' + ', '.join(sorted(FOLD_PRESETS)) + ')')
    parser.add_argument('--work-dir', type=Path, required=True)
    parser.add_argument('--cfg-options', nargs='+', default=[], help='key=value overrides for every run')
    parser.add_argument('--gpus', '--gpus-per-run', dest='gpus', type=int, default=None,
                        help='GPUs per run (default: 1 if CUDA else 0); more than 1: DDP over that many processes')
    parser.add_argument('--tasks-per-run', type=int, default=None,
                        help='processes (DDP ranks) per run (default: the GPUs per run, at least 1); e.g. 2 with '
                             '--gpus-per-run 0 trains with gloo on CPUs')
    parser.add_argument('--launcher', choices=('local', 'slurm'), default='local',
                        help='local: on this machine (--jobs K at once); slurm: each run as its own Slurm job')
    parser.add_argument('--jobs', type=int, default=1, help='--launcher local: up to K runs at once (default 1: '
                        'one after another in this process)')
    parser.add_argument('--partition', help='--launcher slurm: the partition of the jobs')
    parser.add_argument('--cpus-per-run', type=int, default=None, help='--launcher slurm: CPUs per task')
    parser.add_argument('--max-jobs', type=int, default=None,
                        help='--launcher slurm: at most K jobs in the queue at once (default: all runs)')
    parser.add_argument('--slurm-args', default='', help='--launcher slurm: more sbatch options, one string')
    parser.add_argument('--protocol', default=None,
                        help='evaluation protocol of every test (default: a fold preset\'s own, covid19; for '
                             'configs: what each config says)')
    parser.add_argument('--mosmed', type=Path, default=None,
                        help='fold presets: a prepared MosMed (prepare_dataset.py mosmed): also score every model '
                             'with an infection class on its 50 cases (the published MosMed column)')
    parser.add_argument('--folds', type=int, nargs='+', default=None,
                        help='fold presets: run only these folds (default: all; the all row pools those run)')
    args = parser.parse_args(argv)
    if args.protocol is not None:
        from .evaluation.protocols import get_protocol
        try:
            get_protocol(args.protocol)
        except MedSegError as exc:  # a usage error, exit 2 as argparse's
            parser.error(f'--protocol: {exc}')
    slurm_only = [f'--{k.replace("_", "-")}' for k in ('partition', 'cpus_per_run', 'max_jobs', 'slurm_args')
                  if getattr(args, k)]
    if args.launcher == 'local' and slurm_only:
        parser.error(f'{", ".join(slurm_only)} go with --launcher slurm')
    if args.launcher == 'slurm' and not args.partition:
        parser.error('--launcher slurm needs --partition P')
    if args.launcher == 'slurm' and args.jobs != 1:
        parser.error('--jobs goes with --launcher local (for Slurm: --max-jobs)')
    for flag in ('jobs', 'tasks_per_run', 'cpus_per_run', 'max_jobs'):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f'--{flag.replace("_", "-")} must be >= 1')
    fold_preset = FOLD_PRESETS.get(args.preset)
    if fold_preset is None:
        if args.mosmed is not None or args.folds is not None:
            parser.error('--mosmed and --folds go with a fold preset (' + ', '.join(sorted(FOLD_PRESETS)) + ')')
        try:
            configs = resolve_configs(args.configs or PRESETS[args.preset])
        except FileNotFoundError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 1
    if args.mosmed is not None and not (args.mosmed / 'manifest.csv').is_file():
        print(f'error: --mosmed {args.mosmed}: no manifest.csv (prepare it with tools/prepare_dataset.py mosmed)',
              file=sys.stderr)
        return 1
    try:  # the runs, tables and charts go under --work-dir: never over or around an input
        from .outputs import check_apart
        check_apart(args.work_dir, '--work-dir', {'--mosmed': args.mosmed})
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if args.gpus is None:
        import torch
        args.gpus = 1 if torch.cuda.is_available() else 0
    tasks = args.tasks_per_run or max(1, args.gpus)
    executor = make_executor(args, tasks)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if fold_preset is not None:
        if fold_preset.note:
            print(f'note: {fold_preset.note}')
        try:
            paths = run_fold_preset(fold_preset, args.work_dir, args.cfg_options, args.gpus, args.mosmed, args.folds,
                                    args.protocol, args.preset, executor, tasks)
        except (RuntimeError, KeyError, MedSegError) as exc:
            print(f'error: {args.preset}: {exc}', file=sys.stderr)
            return 1
        for path in paths:
            print(f'wrote {path}')
        print(paths[1].read_text())
        return 0
    units = []
    for config in configs:
        try:
            test_options = [protocol_option(config, args.cfg_options, args.protocol)] if args.protocol else []
            units.append(config_unit(config, args.work_dir, args.cfg_options, args.gpus, test_options, tasks))
        except (RuntimeError, KeyError, MedSegError) as exc:
            print(f'error: {config}: {exc}', file=sys.stderr)
            return 1
    failed = execute(units, executor)
    if failed:
        print(f'error: {len(failed)} run(s) failed: ' + ', '.join(u.label for u in failed), file=sys.stderr)
        return 1
    results = [json.loads((u.run_dir / 'result.json').read_text()) for u in units]
    for path in write_results(results, args.work_dir, args.protocol):
        print(f'wrote {path}')
    print((args.work_dir / 'results.md').read_text())
    return 0
