# HemSeg slices prepared with three HU windows as the PNG channels:
#   python tools/prepare_dataset.py hemseg --src RAW --out data/hemseg-3w --windows brain,subdural,bone
# (channel 0 = brain, 1 = subdural, 2 = bone as stored; mmseg's LoadImageFromFile keeps that order).
# No PhotoMetricDistortion: its hue/saturation steps (HSV) would mix the three windows.
_base_ = './hemseg_512x512.py'
data_root = 'data/hemseg-3w/'
img_scale = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
