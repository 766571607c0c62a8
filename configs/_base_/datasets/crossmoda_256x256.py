# CrossMoDA slices written by
#   python tools/prepare_dataset.py crossmoda --src RAW --out data/crossmoda --spacing 0.41 --crop 256
# Every slice is stored once (images/, masks/ for the labelled ceT1 source cases); a split is a list of slice
# stems (mmseg's ann_file): splits/train.txt, splits/val.txt (source patients, hold-out), splits/target.txt and
# splits/target_val.txt (hrT2, image-only: no masks), splits/target_pseudo.txt (tools/pseudo_label.py).
# Volume metrics: the challenge's protocol (scores.py: medpy Dice and ASSD per structure, spacing = |diagonal of the
# label's affine|, 350 mm for an empty prediction; median [IQR] and per site), on the source label's grid: the
# prediction is restacked and mapped back through --spacing/--crop, so every label voxel counts. `mim test --out DIR`
# writes those source-grid predictions to DIR/volumes.
_base_ = './medical_slices_512x512.py'

dataset_type = 'CrossMoDADataset'
data_root = 'data/crossmoda/'
img_scale = (256, 256)
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
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metrics=[
    dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice']),
    dict(type='VolumeMetric', protocol='crossmoda'),
])
test_evaluator = val_evaluator
