"""``tools/plan.py DATA``: nnU-Net's dataset fingerprint of a prepared dataset, and mmseg configs planned from it.

* ``DATA/fingerprint.json``: :func:`mmseg_medical.fingerprint.dataset_fingerprint` of the training cases (every
  labelled case not pinned to ``test``), read from the raw release the dataset was prepared from (``dataset.json``
  ``source``, or ``--src``) through the same converter, with nnU-Net's keys (``spacings`` and
  ``shapes_after_crop`` in (z, y, x), ``foreground_intensity_properties_per_channel``,
  ``median_relative_size_after_cropping``).
* ``--model NAME --out CONFIG``: a self-contained mmseg config for the prepared slices: its classes, ``in_channels``
  = image channels × ``--offsets``, the input size = the median slice shape rounded up to a multiple of 32, class
  weights of the cross-entropy = median-frequency balancing of the training split's class pixels
  (``median(f) / f_c``), and the schedule of the Cranium configs (SGD, lr 0.01, poly, 20k iterations, batch 16).
  Models (:data:`MODELS`): ``unet`` (UNet-S5-D16 + FCN head, as the shipped configs), ``segformer-mit-b0`` and
  ``deeplabv3plus-r50``, ``upernet-swin-t`` with ImageNet weights, the first layer adapted to the channel count
  (:class:`~mmseg_medical.models.in_channels.PretrainedInChannelsInit`; Swin: ``SwinTransformerInChannels``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import MedSegError, UsageError
from .manifest import CASES_DIR, read_dataset_card

FINGERPRINT = 'fingerprint.json'
TEST_SPLIT = 'test'


@dataclass(frozen=True)
class ModelPreset:
    """An mmseg model for ``--model``: its base config and ImageNet checkpoint (None: trained from scratch)."""

    base: str
    checkpoint: Optional[str]
    description: str


MODELS: Dict[str, ModelPreset] = {
    'unet': ModelPreset('mmseg::_base_/models/fcn_unet_s5-d16.py', None,
                        'UNet-S5-D16 + FCN head (as the shipped configs), from scratch'),
    'segformer-mit-b0': ModelPreset(
        'mmseg::_base_/models/segformer_mit-b0.py',
        'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b0_20220624-7e0fe6dd.pth',
        'SegFormer MiT-B0, ImageNet-1k weights'),
    'deeplabv3plus-r50': ModelPreset('mmseg::_base_/models/deeplabv3plus_r50-d8.py', 'open-mmlab://resnet50_v1c',
                                     'DeepLabV3+ ResNet-50-D8 (V1c), ImageNet weights'),
    'upernet-swin-t': ModelPreset(
        'mmseg::_base_/models/upernet_swin.py',
        'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_tiny_patch4_window7_224_20220317-1cdeb081.pth',
        'UPerNet + Swin-T, ImageNet-1k weights (SwinTransformerInChannels)'),
}


def _converter_for(card: dict, data: Path):
    from .conversion import CONVERTERS

    name = card.get('name')
    if name not in CONVERTERS:
        raise MedSegError(data / 'dataset.json', f'prepared by an unknown converter {name!r}')
    settings = {k: v for k, v in (card.get('settings') or {}).items()}
    try:
        return CONVERTERS[name](**settings)
    except TypeError as exc:
        raise MedSegError(data / 'dataset.json', f'cannot rebuild converter {name} from its settings ({exc})') from None


def compute_fingerprint(data: Path, src: Optional[Path] = None) -> dict:
    """nnU-Net's fingerprint of the training cases of the prepared dataset ``data`` (see the module)."""
    from .fingerprint import dataset_fingerprint

    data = Path(data)
    card = read_dataset_card(data)
    src = Path(src or card.get('source') or '')
    if not str(src) or not src.exists():
        raise UsageError(data / 'dataset.json', f'the raw release {src} is not there; pass --src')
    converter = _converter_for(card, data)
    cases = [c for c in converter.find_cases(src) if c.label is not None and c.split != TEST_SPLIT]
    if not cases:
        raise MedSegError(src, 'no labelled training case to fingerprint')
    triples = []
    for case in cases:
        channels = converter.read_channels(case)
        label = converter.read_label(case)
        # nnU-Net reads float32 images, (z, y, x) arrays, spacing (z, y, x); our volumes are (Z, H, W), (x, y, z)
        triples.append(([np.asarray(v.array, dtype=np.float32) for v in channels], np.asarray(label.array),
                        list(reversed(channels[0].spacing))))
    return dataset_fingerprint(triples)


def write_fingerprint(data: Path, src: Optional[Path] = None) -> Path:
    out = Path(data) / FINGERPRINT
    fingerprint = compute_fingerprint(data, src)
    tmp = out.with_name(f'.{out.name}.part')
    tmp.write_text(json.dumps(fingerprint, indent=1) + '\n')
    tmp.replace(out)
    return out


def median_slice_shape(data: Path) -> Tuple[int, int]:
    shapes = [json.loads(p.read_text())['shape_zhw'][1:] for p in sorted((Path(data) / CASES_DIR).glob('*.json'))]
    if not shapes:
        raise MedSegError(Path(data) / CASES_DIR, 'no case records: prepare the dataset first')
    h, w = np.median(np.asarray(shapes, dtype=np.float64), axis=0)
    return int(h), int(w)


def input_size(data: Path, multiple: int = 32) -> Tuple[int, int]:
    """(H, W): the median slice shape rounded up to a multiple of ``multiple``."""
    h, w = median_slice_shape(data)
    return tuple(int(math.ceil(s / multiple) * multiple) for s in (h, w))  # type: ignore[return-value]


def class_weights(data: Path, split: str = 'train') -> List[float]:
    """Median-frequency balancing of the class pixels of split list ``split`` (``splits.json``):
    ``median(f) / f_c`` (a class without pixels: 1)."""
    lists = json.loads((Path(data) / 'splits.json').read_text())
    if split not in lists:
        raise UsageError('--split', f'{data} has no split list {split!r}; one of {", ".join(sorted(lists))}')
    pixels = np.zeros(0)
    for case in lists[split]:
        counts = json.loads((Path(data) / CASES_DIR / f'{case}.json').read_text())['statistics']['class_pixels']
        pixels = np.asarray(counts, np.float64) + (pixels if pixels.size else 0)
    freq = pixels / pixels.sum()
    present = freq > 0
    median = float(np.median(freq[present]))
    return [round(float(median / f), 4) if f > 0 else 1.0 for f in freq]


def plan_config(data: Path, model: str, offsets: Sequence[int] = (0,), split: str = 'train',
                val_split: str = 'val') -> str:
    """The text of an mmseg config for ``model`` on the prepared dataset ``data`` (see the module)."""
    if model not in MODELS:
        raise UsageError('--model', f'unknown model {model!r}; choose from {", ".join(MODELS)}')
    data = Path(data).resolve()
    card = read_dataset_card(data)
    classes = [str(c) for c in card['classes']]
    channels = [str(c) for c in card.get('channels') or ['image']]
    in_channels = len(channels) * len(offsets)
    h, w = input_size(data)
    weights = class_weights(data, split)
    preset = MODELS[model]
    palette = [[0, 0, 0]] + [[int(v) for v in np.random.default_rng(c).integers(40, 256, 3)] for c in
                             range(1, len(classes))]
    init = ('None' if preset.checkpoint is None else
            f"dict(type='PretrainedInChannels', checkpoint='{preset.checkpoint}')")
    head = ("decode_head=dict(num_classes=num_classes, loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, "
            'loss_weight=1.0, class_weight=class_weight)),')
    backbone = f'backbone=dict(in_channels=in_channels, init_cfg={init}),'
    if model == 'upernet-swin-t':  # Swin loads its checkpoint itself: the subclass adapts the patch embedding
        backbone = (f"backbone=dict(type='SwinTransformerInChannels', in_channels=in_channels, "
                    f"init_cfg=dict(type='Pretrained', checkpoint='{preset.checkpoint}')),")
    if model == 'unet':
        extra = "auxiliary_head=None,\n    test_cfg=dict(mode='whole', _delete_=True),"
    elif model in ('deeplabv3plus-r50', 'upernet-swin-t'):
        extra = 'pretrained=None,\n    auxiliary_head=None,'
    else:
        extra = ''
    return f'''# Planned by tools/plan.py for {data} (model {model}: {preset.description}).
# Input: {len(channels)} channel(s) {channels} x offsets {tuple(offsets)} = {in_channels} channels (LoadSliceStack);
# size {h}x{w} = the median slice shape rounded up to a multiple of 32; class weights = median-frequency
# balancing of split {split}'s class pixels; schedule of the Cranium configs (SGD lr 0.01, poly, 20k, batch 16).
_base_ = ['{preset.base}', 'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_20k.py']
custom_imports = dict(imports=['mmseg_medical'], allow_failed_imports=False)
data_root = '{data}/'
classes = {classes!r}
num_classes = {len(classes)}
offsets = {tuple(offsets)!r}
in_channels = {in_channels}
class_weight = {weights!r}
img_scale = ({w}, {h})  # (w, h) as mmcv's Resize takes it
train_pipeline = [
    dict(type='LoadSliceStack', offsets=offsets),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='BrightnessContrastDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadSliceStack', offsets=offsets),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
metainfo = dict(classes=classes, palette={palette!r})
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='NnUNetDataset', data_root=data_root, metainfo=metainfo, ann_file='splits/{split}.txt',
                 data_prefix=dict(img_path='images/', seg_map_path='masks/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='NnUNetDataset', data_root=data_root, metainfo=metainfo, ann_file='splits/{val_split}.txt',
                 data_prefix=dict(img_path='images/', seg_map_path='masks/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='SegEvaluator', metrics=[dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice']),
                                                   dict(type='VolumeMetric', protocol='nnunet')])
test_evaluator = val_evaluator
custom_hooks = [dict(type='CheckpointFitHook'), dict(type='RunInfoHook')]
# One mean/std per input channel, in slice order (no BGR->RGB swap): 0..255 -> about -2..2.
data_preprocessor = dict(type='SegDataPreProcessor', mean=[127.5] * in_channels, std=[63.75] * in_channels,
                         bgr_to_rgb=False, pad_val=0, seg_pad_val=255, size=({h}, {w}))
optimizer = dict(lr=0.01)
optim_wrapper = dict(optimizer=optimizer)
model = dict(
    data_preprocessor=data_preprocessor,
    {backbone}
    {head}
    {extra}
)
'''
