"""The runner: config resolution, run keys and folders, train + test of one run (a config, or one model of one
fold of a fold preset) as a :class:`~.executors.Unit` any executor can start, and the fold presets' runs."""
from __future__ import annotations

import argparse
import copy
import csv
import functools
import glob
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import MedSegError
from ..runs import last_checkpoint, mim_test, mim_train, read_test_metrics, run
from .executors import InProcessExecutor, Unit, now_iso
from .presets import FoldPreset
from .tables import truth_empty, write_fold_tables


REPO = Path(__file__).resolve().parents[3]


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
    from ..evaluation.protocols import get_protocol

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
