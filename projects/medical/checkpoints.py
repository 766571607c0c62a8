"""Refuse a checkpoint that does not fit the model, before any training step or scoring.

mmengine's ``Runner`` loads ``load_from`` (``mim test --checkpoint``, ``mim train`` with ``load_from``) and
``--resume`` checkpoints with ``strict=False``: a checkpoint of a model built with other ``--cfg-options``
(another ``base_channels``, another number of classes) only logs one ``size mismatch`` line per parameter,
and the run goes on with the randomly initialised weights. :class:`CheckpointFitHook` (in every config
through ``custom_hooks`` of ``configs/_base_/datasets/medical_slices_512x512.py``) checks the checkpoint
against the model's ``state_dict`` in ``after_load_checkpoint`` (the runner has read the file and not yet
copied a weight) and stops the run with one line::

    error: <checkpoint>: does not fit the model built from the config (pass the --cfg-options it was trained
    with): backbone.encoder.0.0.convs.0.conv.weight is [8, 3, 3, 3] in the checkpoint, [16, 3, 3, 3] in the
    model (116 of the model's 140 entries differ)

(one line on stderr) and exit status 1. A checkpoint fits when every entry of the model's ``state_dict``
(parameters and buffers) is in it with the same shape; entries only the checkpoint has (e.g. an auxiliary head
the config drops) are mmengine's to ignore. To initialise from another model's checkpoint on purpose
(fine-tuning a pretrained model with other classes), drop the hook: ``--cfg-options custom_hooks=[]``.

``tools/infer_volume.py`` and ``tools/pseudo_label.py`` load with ``strict=True`` in
:func:`mmseg_medical.inference.load_model`, which gives the same first sentence.

A checkpoint carries its training config: mmengine's ``CheckpointHook`` stores ``runner.cfg.pretty_text`` as
``meta['cfg']`` (mmengine 0.10.7 ``Runner.save_checkpoint``). :func:`config_from_checkpoint` reads it back, so
``infer_volume``, ``pseudo_label`` and ``tools/report.py --checkpoint`` take a checkpoint alone. A checkpoint
can fit the model's shapes and still be wrong for the config: a 1-slice Cranium model (grey slice in 3
channels) fits the 2.5D config (3 neighbouring slices in 3 channels) and ran silently, scoring lower (issue 20).
:func:`check_same_input` compares what defines the model's input (:func:`input_signature`: the test pipeline's
loading step with its offsets / windows, the data preprocessor's mean, std and channel order, the backbone's
``in_channels``) between the checkpoint's training config and the config it is used with; ``mim test``
(:class:`CheckpointFitHook`, before the first test step) and ``infer_volume`` / ``pseudo_label`` (in
``load_model``) refuse a difference with one line::

    error: <checkpoint>: was trained on other input than the config gives: test pipeline loading step is
    [{'type': 'LoadImageFromFile'}] in its training config, [{'offsets': [-1, 0, 1], 'type': 'LoadSliceStack'}]
    in the config (also data_preprocessor.bgr_to_rgb); use the config it was trained with
"""
from __future__ import annotations

import json
import re
import sys
from os import PathLike
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import find_latest_checkpoint
from mmseg.registry import HOOKS

from .errors import MedSegError

ADVICE = 'does not fit the model built from the config (pass the --cfg-options it was trained with)'
#: mmengine's ``Runner.load_checkpoint`` default ``revise_keys``: a ``module.`` prefix (DDP) is dropped.
_MODULE_PREFIX = re.compile(r'^module\.')


def checkpoint_state(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """The weights of a loaded checkpoint as mmengine reads them: ``checkpoint['state_dict']`` (or the dict
    itself), keys without a leading ``module.``."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise TypeError(f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    return {_MODULE_PREFIX.sub('', str(k)): v for k, v in state.items()}


def _shape(value: Any) -> Optional[List[int]]:
    shape = getattr(value, 'shape', None)
    return None if shape is None else [int(s) for s in shape]


def misfits(model_state: Mapping[str, Any], checkpoint_state: Mapping[str, Any]
            ) -> Tuple[List[Tuple[str, List[int], List[int]]], List[str]]:
    """``(shape mismatches, missing)`` of ``model_state`` against ``checkpoint_state``: the entries whose
    shapes differ as ``(name, checkpoint shape, model shape)``, and the model's entries the checkpoint lacks;
    both in the model's order."""
    wrong, missing = [], []
    for name, value in model_state.items():
        if name not in checkpoint_state:
            missing.append(name)
            continue
        have, want = _shape(checkpoint_state[name]), _shape(value)
        if have != want:
            wrong.append((name, have, want))
    return wrong, missing


def check_fits(model, checkpoint: Mapping[str, Any], path: Union[str, PathLike, None]) -> None:
    """Raise :class:`MedSegError` when ``checkpoint`` does not fit ``model``; one line: the first entry that
    differs (its shape in both, or that the checkpoint lacks it) and, when more do, how many of how many."""
    model = model.module if is_model_wrapper(model) else model
    model_state = model.state_dict()
    wrong, missing = misfits(model_state, checkpoint_state(checkpoint))
    if not wrong and not missing:
        return
    if wrong:
        name, have, want = wrong[0]
        first = f'{name} is {have} in the checkpoint, {want} in the model'
    else:
        first = f'{missing[0]} is not in the checkpoint'
    count = len(wrong) + len(missing)
    more = f' ({count} of the model\'s {len(model_state)} entries differ)' if count > 1 else ''
    raise MedSegError(path, f'{ADVICE}: {first}{more}')


INPUT_ADVICE = 'was trained on other input than the config gives'
#: Pipeline steps that do not define the image the model sees (labels, packing).
_NOT_INPUT = {'LoadAnnotations', 'PackSegInputs'}


def _plain(value: Any) -> Any:
    """Config values as JSON would hold them (tuples as lists, ConfigDicts as dicts), to compare across a
    config file and a config text read back from a checkpoint."""
    return json.loads(json.dumps(value, sort_keys=True, default=lambda v: dict(v) if isinstance(v, Mapping)
                                 else list(v) if isinstance(v, (tuple, set)) else str(v)))


def input_signature(cfg) -> Dict[str, Any]:
    """What defines a model's input in a config: the loading steps of the test pipeline (``LoadImageFromFile``,
    ``LoadSliceStack`` with its ``offsets`` / ``windows``, ...), the data preprocessor's ``mean``, ``std``,
    ``bgr_to_rgb`` / ``rgb_to_bgr`` and the backbone's ``in_channels``; JSON-plain values, ``None`` where unset."""
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline') or []
    loading = [step for step in pipeline if str(step.get('type', '')).startswith('Load')
               and step.get('type') not in _NOT_INPUT]
    model = cfg.get('model') or {}
    preprocessor = model.get('data_preprocessor') or {}
    signature = {'test pipeline loading step': loading}
    for key in ('mean', 'std', 'bgr_to_rgb', 'rgb_to_bgr'):
        signature[f'data_preprocessor.{key}'] = preprocessor.get(key)
    signature['backbone.in_channels'] = (model.get('backbone') or {}).get('in_channels')
    return {key: _plain(value) for key, value in signature.items()}


def training_config_text(checkpoint: Mapping[str, Any]) -> Optional[str]:
    """The training config mmengine stored in a loaded checkpoint (``meta['cfg']``), or None."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    text = meta.get('cfg') if isinstance(meta, Mapping) else None
    return text if isinstance(text, str) and text.strip() else None


def parse_config_text(text: str, path: Union[str, PathLike, None]):
    """An mmengine ``Config`` from a config text (``meta['cfg']``), named after ``path`` in messages."""
    from mmengine.config import Config

    try:
        cfg = Config.fromstring(text, '.py')
    except Exception as exc:  # mmengine raises assorted errors for texts that do not parse
        raise MedSegError(path, f"cannot read the training config it carries (meta['cfg']: "
                                f'{type(exc).__name__}: {exc})') from None
    return Config(cfg.to_dict(), cfg_text=text, filename=str(path))


def read_checkpoint(path: Union[str, PathLike]) -> dict:
    """A checkpoint file loaded on the CPU; one :class:`MedSegError` line when it is missing or unreadable."""
    from pathlib import Path

    from mmengine.runner.checkpoint import _load_checkpoint

    if not Path(path).is_file():
        raise MedSegError(path, 'checkpoint file not found')
    try:
        return _load_checkpoint(str(path), map_location='cpu')
    except Exception as exc:  # torch / pickle raise many types for unreadable checkpoints
        raise MedSegError(path, f'cannot read checkpoint ({type(exc).__name__}: {exc})') from None


def config_from_checkpoint(path: Union[str, PathLike], cfg_options: Optional[dict] = None):
    """The training config a checkpoint carries (``meta['cfg']``) with ``cfg_options`` merged in; its
    ``filename`` is the checkpoint's path. Raises when the checkpoint carries none."""
    text = training_config_text(read_checkpoint(path))
    if text is None:
        raise MedSegError(path, "carries no training config (meta['cfg'], written by mmengine's CheckpointHook); "
                                'pass the config it was trained with')
    cfg = parse_config_text(text, path)
    if not cfg.get('model'):
        raise MedSegError(path, "carries a training config without a model (meta['cfg']); pass the config it was "
                                'trained with')
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as exc:
            raise MedSegError(path, f'cannot apply --cfg-options ({type(exc).__name__}: {exc})') from None
    return cfg


def check_same_input(checkpoint: Mapping[str, Any], cfg, path: Union[str, PathLike, None]) -> None:
    """Raise :class:`MedSegError` (one line: the first part that differs, in both) when the checkpoint's training
    config defines another input than ``cfg`` (:func:`input_signature`); a checkpoint without its config (or
    with a text that defines no model) passes: nothing to compare."""
    text = training_config_text(checkpoint)
    trained_cfg = None if text is None else parse_config_text(text, path)
    if trained_cfg is None or not trained_cfg.get('model'):  # no config, or a text that is not one
        return
    trained, used = input_signature(trained_cfg), input_signature(cfg)
    differ = [key for key in used if trained.get(key) != used[key]]
    if differ:
        key = differ[0]
        more = f' (also {", ".join(differ[1:])})' if len(differ) > 1 else ''
        raise MedSegError(path, f'{INPUT_ADVICE}: {key} is {trained.get(key)} in its training config, {used[key]} '
                                f'in the config{more}; use the config it was trained with')


def _checkpoint_path(runner) -> Optional[str]:
    """The file the runner is loading: ``load_from``, else (``--resume`` without it) the latest in work_dir
    (``Runner.load_or_resume``'s choice; mmengine 0.10.7 keeps both settings in private attributes)."""
    path = getattr(runner, '_load_from', None)
    if path is None and getattr(runner, '_resume', False):
        path = find_latest_checkpoint(runner.work_dir)
    return None if path is None else str(path)


def _stop(exc: MedSegError) -> None:
    if is_main_process():
        print(f'error: {exc}', file=sys.stderr, flush=True)
    raise SystemExit(1) from None


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Stops ``mim test`` / ``mim train`` (``load_from``, ``--resume``) with one line on stderr and exit status 1
    when the checkpoint does not fit the model (:func:`check_fits`), before a weight is copied; and ``mim test``,
    before the first test step, when the checkpoint was trained on other input than the config gives
    (:func:`check_same_input`; training from another model's weights, ``load_from``, is left alone)."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._loaded: Optional[Tuple[dict, str]] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        path = _checkpoint_path(runner) or 'checkpoint'
        try:
            check_fits(runner.model, checkpoint, path)
        except MedSegError as exc:
            _stop(exc)
        self._loaded = ({'meta': {'cfg': training_config_text(checkpoint)}}, path)

    def before_test(self, runner) -> None:
        if self._loaded is None:
            return
        checkpoint, path = self._loaded
        try:
            check_same_input(checkpoint, runner.cfg, path)
        except MedSegError as exc:
            _stop(exc)
