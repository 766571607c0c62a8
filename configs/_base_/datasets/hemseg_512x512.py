# HemSeg-200/500 slices written by `python tools/prepare_dataset.py hemseg --src RAW --out data/hemseg` (brain window).
# Every slice is stored once (images/, masks/); a split is a list of slice stems, mmseg's `ann_file`:
# splits/{train,val,test}.txt: the official split (--split official); --split patient keeps the CSVs' test scans (and
# every other scan of their patients) as test and re-splits the rest patient-disjoint into train/val.
# With --split patient --folds 5, train on fold 2 of 5 without a new config:
#   --cfg-options train_dataloader.dataset.ann_file=splits/fold2_train.txt \
#                 val_dataloader.dataset.ann_file=splits/fold2_val.txt test_dataloader.dataset.ann_file=splits/fold2_val.txt
_base_ = './medical_slices_512x512.py'

dataset_type = 'HemSegDataset'
data_root = 'data/hemseg/'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, ann_file='splits/test.txt'))
# Protocol hemseg on the official test split: per-case Dice, IoU, HD95 (MONAI's rule, in mm on the source grid)
# with the paper's 95% bootstrap CI of 5000 RandomState(47) resamples. Table 1's own grid and HD95 unit (voxels):
# tools/evaluate_volumes.py --protocol hemseg-paper (configs/hemseg/README.md).
test_evaluator = dict(metrics=[
    dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice']),
    dict(type='VolumeMetric', nsd_tolerance=1.0, protocol='hemseg', n_bootstrap=5000),
])
