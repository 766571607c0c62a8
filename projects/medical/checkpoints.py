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
"""
from __future__ import annotations

import re
import sys
from os import PathLike
from typing import Any, List, Mapping, Optional, Tuple, Union

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


def _checkpoint_path(runner) -> Optional[str]:
    """The file the runner is loading: ``load_from``, else (``--resume`` without it) the latest in work_dir
    (``Runner.load_or_resume``'s choice; mmengine 0.10.7 keeps both settings in private attributes)."""
    path = getattr(runner, '_load_from', None)
    if path is None and getattr(runner, '_resume', False):
        path = find_latest_checkpoint(runner.work_dir)
    return None if path is None else str(path)


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Stops ``mim test`` / ``mim train`` (``load_from``, ``--resume``) with one line on stderr and exit status 1
    when the checkpoint does not fit the model (:func:`check_fits`), before a weight is copied."""

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        try:
            check_fits(runner.model, checkpoint, _checkpoint_path(runner) or 'checkpoint')
        except MedSegError as exc:
            if is_main_process():
                print(f'error: {exc}', file=sys.stderr, flush=True)
            raise SystemExit(1) from None
