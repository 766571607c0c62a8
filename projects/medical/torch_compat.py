"""Let ``torch.load(weights_only=True)`` (the default since torch 2.6) read mmengine checkpoints.

mmengine saves its ``message_hub`` in every checkpoint: ``HistoryBuffer`` objects holding numpy arrays
and scalars, whose statistics dict holds methods pickled as ``builtins.getattr(HistoryBuffer, 'mean')``.
So ``mim test --checkpoint`` / ``--resume`` fail with "Weights only load failed". This module allow-lists
exactly what those pickles name, and nothing more, while ``weights_only`` stays on:

* ``HistoryBuffer``; numpy's array reconstructor, ``ndarray``, ``dtype`` and its scalar dtype classes,
  and numpy's scalar constructor;
* ``builtins.getattr`` *only* through a stand-in that resolves HistoryBuffer statistic methods
  (``min``, ``max``, ``mean``, ``current`` and registered ones) and refuses anything else, so a crafted
  checkpoint cannot reach e.g. ``ndarray.tofile``.
"""
from __future__ import annotations

import pickle
from typing import Any, List


def _numpy_private(name: str) -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, name)


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the statistic methods of an mmengine ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer

    allowed = {'min', 'max', 'mean', 'current', *HistoryBuffer._statistics_methods}
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer statistics are allowed')


def checkpoint_safe_globals() -> List[Any]:
    """The globals an mmengine checkpoint pickles besides tensors (see the module docstring)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.int16,
                                          np.int8, np.uint8, np.bool_)]
    return [HistoryBuffer, _numpy_private('_reconstruct'), _numpy_private('scalar'), np.ndarray, np.dtype, *dtypes,
            (history_buffer_getattr, 'builtins.getattr')]


def register_checkpoint_safe_globals() -> bool:
    """Add :func:`checkpoint_safe_globals` to torch's allow-list; False if this torch has no such list."""
    import torch.serialization

    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads with weights_only=False by default
        return False
    add(checkpoint_safe_globals())
    return True
