"""Let ``torch.load(weights_only=True)`` (the default since torch 2.6) read mmengine checkpoints.

mmengine saves its ``message_hub`` (``HistoryBuffer`` objects holding numpy arrays) in every checkpoint,
so ``mim test --checkpoint`` / ``--resume`` fail with "Weights only load failed". Registering exactly the
classes those pickles name as safe globals fixes that while ``weights_only`` stays on: no arbitrary code
can run from a checkpoint.
"""
from __future__ import annotations

from typing import List


def checkpoint_safe_globals() -> List[object]:
    """The classes an mmengine checkpoint pickles besides tensors: HistoryBuffer and numpy arrays."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.int16,
                                          np.int8, np.uint8, np.bool_)]
    return [HistoryBuffer, _reconstruct, np.ndarray, np.dtype, *dtypes]


def register_checkpoint_safe_globals() -> bool:
    """Add :func:`checkpoint_safe_globals` to torch's allow-list; False if this torch has no such list."""
    import torch.serialization

    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads with weights_only=False by default
        return False
    add(checkpoint_safe_globals())
    return True
