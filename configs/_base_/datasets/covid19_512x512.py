# COVID-19-CT-Seg slices written by `python tools/prepare_dataset.py covid19 --src RAW --out data/covid19`: by default
# (--subtask all) one label store from which every Task 1 model reads its classes; `subtask` below picks them:
# lung_infection (background, left_lung, right_lung, infection: the joint / Task1-Union model), lung or infection
# (the two models of Task1-Separate). Every slice is stored once; a split is a list of slice stems (mmseg's
# `ann_file`). The benchmark's Task 1 protocol: train on the 4 cases of splits/task1_fold{k}_train.txt, test on the
# other 16 (splits/task1_fold{k}_test.txt). Fold 0 here; fold 2:
#   --cfg-options train_dataloader.dataset.ann_file=splits/task1_fold2_train.txt \
#                 val_dataloader.dataset.ann_file=splits/task1_fold2_test.txt \
#                 test_dataloader.dataset.ann_file=splits/task1_fold2_test.txt
_base_ = './medical_slices_512x512.py'

dataset_type = 'Covid19Dataset'
data_root = 'data/covid19/'
subtask = 'lung_infection'
img_scale = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    # No flips (as published): left and right lung are different classes. To train with flips that exchange them:
    # dict(type='LateralRandomFlip', prob=0.5, swap_pairs=[(1, 2)]) (joint and lung subtasks).
    dict(type='RandomFlip', prob=0.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(type=dataset_type, subtask=subtask, data_root=data_root,
                                     ann_file='splits/task1_fold0_train.txt', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type=dataset_type, subtask=subtask, data_root=data_root,
                                   ann_file='splits/task1_fold0_test.txt'))
test_dataloader = val_dataloader
# The benchmark's metrics (protocol covid19 = its utils/COVID-19-Seg-Evaluation.py): per case DSC and NSD, tolerance
# 1 mm for the lungs and 3 mm for the infection (by class name), spacing from the NIfTI header, scored on the source
# grid against labels/<case>.nii.gz read as the subtask's classes (Covid19VolumeMetric); mean ± std over cases.
val_evaluator = dict(metrics=[
    dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice']),
    dict(type='Covid19VolumeMetric', protocol='covid19'),
])
test_evaluator = val_evaluator
