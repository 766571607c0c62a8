# 2.5D COVID-19-CT-Seg Task 1, the joint model (left lung, right lung, infection): slices k-1, k, k+1 of the same
# scan as the three input channels (LoadSliceStack reads the neighbours through manifest.csv; edges replicated), in
# place of the grey slice copied three times. Same data, folds, model and schedule as
# fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py (fold 0; others by --cfg-options, as there).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'  # same data, model and schedule; only the input differs
offsets = (-1, 0, 1)
img_scale = (512, 512)
# No flips (left and right lung are different classes); PhotoMetricDistortion's HSV steps would mix neighbouring
# slices: its brightness and contrast steps only.
train_pipeline = [
    dict(type='LoadSliceStack', offsets=offsets),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.0),
    dict(type='BrightnessContrastDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadSliceStack', offsets=offsets),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
# Channels in offset order (no BGR->RGB swap); mmseg's default mean/std, one value per channel.
data_preprocessor = dict(bgr_to_rgb=False, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375])
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(in_channels=len(offsets)))
