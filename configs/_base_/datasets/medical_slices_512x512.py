# What every dataset prepared by tools/prepare_dataset.py shares: one slice store (images/, masks/) with split
# lists as mmseg's `ann_file` (splits/<name>.txt), the 512x512 pipelines, and slice-pooled mmseg metrics plus
# per-case volume metrics. A dataset's base (cranium_512x512.py, ...) sets dataset_type and data_root in the
# dataloaders and overrides what differs.
custom_imports = dict(imports=['mmseg_medical'], allow_failed_imports=False)

img_scale = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        ann_file='splits/train.txt',
        data_prefix=dict(img_path='images/', seg_map_path='masks/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        ann_file='splits/val.txt',
        data_prefix=dict(img_path='images/', seg_map_path='masks/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# Slice-pooled mmseg metrics plus per-case volume metrics (restacked with manifest.csv, scored on the source grid
# against labels/<case>.nii.gz; protocol 'default': Dice, IoU, NSD@1 mm, HD95 and ASSD in mm).
# SegEvaluator = mmengine's Evaluator that also takes `mim test --out DIR` (slice PNGs + DIR/volumes/*.nii.gz).
val_evaluator = dict(
    type='SegEvaluator',
    metrics=[
        dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice']),
        dict(type='VolumeMetric', protocol='default'),
    ])
test_evaluator = val_evaluator
# A checkpoint that does not fit the model (trained with other --cfg-options) stops `mim test`, `load_from` and
# `--resume` with one line and exit 1 before any step (mmseg_medical.checkpoints; `custom_hooks=[]` turns it off).
# RunInfoHook: `mim test --out DIR` writes DIR/run.json (config, checkpoint, data root, split list, protocol as
# absolute paths) beside DIR/volumes/metrics.csv, so that `tools/report.py DIR` finds the run from anywhere.
custom_hooks = [dict(type='CheckpointFitHook'), dict(type='RunInfoHook')]
