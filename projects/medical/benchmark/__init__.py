"""Slice-level benchmark runner: train + test configs with mim, collect slice and volume metrics.

``python tools/benchmark.py --configs 'configs/cranium/*.py' --work-dir work_dirs/bench [--cfg-options ...]``
or ``--preset NAME`` (lists of configs, :data:`.presets.PRESETS`: ``cranium-lr``, ``cranium-heads``, and a 1-slice config
beside its 2.5D counterpart: ``cranium-2.5d``, ``hemseg-2.5d``, ``hemseg-3w-2.5d``, ``crossmoda-2.5d``,
``crossmoda2023-2.5d``): writes
``results.md`` (run, Method, Backbone, Crop Size, lr, input, mIoU, mDice, volume Dice/NSD in %, HD95 in mm),
``results.csv`` and ``results.png`` (:func:`results_figure`: one panel per metric, one bar per run). Each run is
named by the part of its config name that differs from the others' (:func:`run_labels`), the same in the
table, the CSV and the chart. ``--protocol NAME`` scores the volume metrics of every test under that
evaluation protocol (:mod:`mmseg_medical.evaluation.protocols`).

Fold presets (:data:`.presets.FOLD_PRESETS`) run the CT-ICH dataset paper's 5-fold cross-validation (``--preset
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

Where the runs execute (:mod:`.executors`): one after another in this process (default), up to ``--jobs K`` at
once on this machine, or each as its own Slurm job (``--launcher slurm``); every finished run's ``result.json``
records ``launcher``, ``job_id``, ``host``, ``started`` and ``finished``. Runs are resumable. A training run is keyed on the config file name *and* the
``--cfg-options`` values as mmengine parses them (:func:`run_key`: ``scale='(64,64)'`` and ``scale=(64,64)`` are one
run): it lives in ``<work-dir>/<config stem>-<key>/`` (``key`` = 8 hex digits of the SHA-1 of both, written out in
``run_key.json``), so the same config with other override values is a new run. A finished
training (``train.done``) is not repeated; a test whose result exists with the same test options
(protocol, MosMed folder) is not repeated.

Modules: :mod:`.runner` (config resolution, run keys, train + test of one run, fold presets' runs),
:mod:`.executors` (in process, local processes, Slurm jobs; :mod:`.job` runs one of them), :mod:`.presets`,
:mod:`.labels` (run labels), :mod:`.tables`, :mod:`.figures`, :mod:`.published` (the published rows) and
:mod:`.cli` (``tools/benchmark.py``).
"""
from .cli import main
from .executors import InProcessExecutor, LocalExecutor, SlurmExecutor, Unit
from .figures import RUN_COLOURS, axis_title, fold_figure, results_figure
from .labels import run_labels
from .presets import (FOLD_PRESETS, INFECTION, LUNGS, PAIRS_2_5D, PRESETS, SOURCES, SOURCES_MOSMED, TASK1_FOLD,
                      TASK1_MOSMED, TASK3_FOLD, Experiment, FoldPreset, Model, _cfg, comparison_groups,
                      counterpart_2_5d)
from .published import PUBLISHED, TEST_SETS, Values, published
from .runner import (REPO, RUN_ERRORS, config_unit, describe, execute, execute_unit, fold_unit, input_description,
                     load_config, parsed_options, protocol_option, read_case_rows, resolve_configs, run_dir_for,
                     run_fold_model, run_fold_preset, run_key, run_one, test_once, train_command, train_once)
from .tables import (CASE_COLUMNS, COLUMNS, FOLD_METRICS, column_title, fold_summaries, mean_std, truth_empty,
                     write_fold_tables, write_results)

__all__ = [name for name in dir() if not name.startswith('__')]
