"""ImageNet weights for any number of input channels: ``init_cfg=dict(type='PretrainedInChannels', ...)``.

mmengine's ``Pretrained`` initialiser skips a first layer whose kernel does not fit (3 RGB input channels in the
checkpoint, ``C`` slice channels in the model). :class:`PretrainedInChannelsInit` loads the same checkpoint
(downloaded on first use, as mmseg's are) and adapts every such 4D kernel first (:func:`adapt_kernel`): each of
the ``C`` new input kernels is the mean of the pretrained RGB kernels scaled by ``3 / C``, so an input with the
same value in every channel gives the layer the response the pretrained layer gives that grey image.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from mmengine.registry import WEIGHT_INITIALIZERS


def adapt_kernel(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """``(out, c_in, kh, kw)`` → ``(out, in_channels, kh, kw)``: the mean over ``c_in`` repeated, times
    ``c_in / in_channels``."""
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (weight.shape[1] / in_channels)


def adapt_state_dict(state: Dict[str, torch.Tensor], own: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state`` with every 4D kernel whose input-channel count differs from the model's (``own``) adapted."""
    out = dict(state)
    for key, value in state.items():
        target = own.get(key)
        if (target is not None and value.ndim == 4 and target.ndim == 4 and value.shape[1] != target.shape[1]
                and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]):
            out[key] = adapt_kernel(value, target.shape[1]).to(value.dtype)
    return out


@WEIGHT_INITIALIZERS.register_module(name='PretrainedInChannels')
class PretrainedInChannelsInit:
    """``Pretrained`` with the first layer adapted to the model's input channels (see the module)."""

    def __init__(self, checkpoint: str, prefix: Optional[str] = None, map_location: str = 'cpu') -> None:
        self.checkpoint, self.prefix, self.map_location = checkpoint, prefix, map_location

    def __call__(self, module: torch.nn.Module) -> None:
        from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_with_prefix, load_state_dict

        if self.prefix is None:
            loaded = _load_checkpoint(self.checkpoint, map_location=self.map_location, logger='current')
            state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else loaded
            state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
        else:
            state = _load_checkpoint_with_prefix(self.prefix, self.checkpoint, map_location=self.map_location)
        load_state_dict(module, adapt_state_dict(state, module.state_dict()), strict=False, logger='current')

    def _get_init_info(self) -> str:
        return f'{self.__class__.__name__}: load from {self.checkpoint} (first layer adapted to the input channels)'


def _register_swin() -> None:
    from mmseg.models.backbones import SwinTransformer
    from mmseg.registry import MODELS

    @MODELS.register_module(name='SwinTransformerInChannels')
    class SwinTransformerInChannels(SwinTransformer):
        """mmseg's ``SwinTransformer``, whose own checkpoint loading (``init_cfg=dict(type='Pretrained', ...)``)
        adapts the patch embedding to ``in_channels`` (:func:`adapt_state_dict`) instead of failing on it."""

        def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
            return super().load_state_dict(adapt_state_dict(dict(state_dict), self.state_dict()), strict=strict,
                                           **kwargs)


_register_swin()
