# Cranium slices prepared with the release's two windows as PNG channels:
#   python tools/prepare_dataset.py cranium --src RAW --out data/cranium-2w --window ctich-brain,ctich-bone
# (channel 0 = brain 40/120, 1 = bone 700/3200, 2 = zero as stored: the JPG layout reads the brain/ and bone/
# JPGs, the NIfTI layout windows the HU; mmseg's LoadImageFromFile keeps that order).
# No PhotoMetricDistortion: its hue/saturation steps (HSV) would mix the windows.
_base_ = './cranium_512x512.py'
data_root = 'data/cranium-2w/'
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
