"""The benchmark's presets: lists of configs (:data:`PRESETS`, a 1-slice config beside its 2.5D counterpart:
:data:`PAIRS_2_5D`) and fold presets (:data:`FOLD_PRESETS`: the COVID-19-CT-Seg benchmark's tasks on their official
folds, the CT-ICH paper's 5-fold cross-validation), each model with the options that select its fold."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple


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
        from ..conversion.covid19 import subtask_classes
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


def comparison_groups(preset: FoldPreset) -> List[List[Experiment]]:
    """The preset's experiments grouped by the published rows they are compared with (in order): experiments of
    one group (e.g. a 1-slice and a 2.5D joint model) share a chart panel and a side-by-side table."""
    groups: Dict[Tuple[str, ...], List[Experiment]] = {}
    for experiment in preset.experiments:
        groups.setdefault(experiment.references, []).append(experiment)
    return list(groups.values())
