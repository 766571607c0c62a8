# 2.5D on the 3-window slices (data/hemseg-3w, --windows brain,subdural,bone): nine input channels, offsets ×
# windows, offset-major: [brain, subdural, bone] of slice k-1, then of k, then of k+1 (LoadSliceStack reads the
# neighbours through manifest.csv; edges replicated). Same data, model and schedule as
# fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-3w-512x512.py except the first convolution (9 input channels).
# One window of each slice instead: pipeline.0.windows=(0,) (brain; 3 channels: in_channels and mean/std too).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-3w-512x512.py'  # same data, model and schedule; only the input differs
offsets = (-1, 0, 1)
windows = (0, 1, 2)  # brain, subdural, bone as the PNG channels hold them
img_scale = (512, 512)
# No photometric distortion, as the 1-slice 3-window config.
train_pipeline = [
    dict(type='LoadSliceStack', offsets=offsets, windows=windows),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadSliceStack', offsets=offsets, windows=windows),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
# Channels in stack order (no BGR->RGB swap); per slice the mean/std the 3-window config gives its windows.
data_preprocessor = dict(bgr_to_rgb=False, mean=[123.675, 116.28, 103.53] * len(offsets),
                         std=[58.395, 57.12, 57.375] * len(offsets))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(in_channels=len(offsets) * len(windows)))
