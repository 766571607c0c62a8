# Cranium (CT-ICH) slices written by `python tools/prepare_dataset.py cranium --src RAW --out data/cranium`.
# Every slice is stored once (images/, masks/); a split is a list of slice stems, mmseg's `ann_file`:
# splits/train.txt, splits/val.txt (patient hold-out), splits/fold{k}_{train,val}.txt (with --folds K).
# Train on fold 2 of 5 without a new config:
#   --cfg-options train_dataloader.dataset.ann_file=splits/fold2_train.txt \
#                 val_dataloader.dataset.ann_file=splits/fold2_val.txt test_dataloader.dataset.ann_file=splits/fold2_val.txt
_base_ = './medical_slices_512x512.py'

dataset_type = 'CraniumDataset'
data_root = 'data/cranium/'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
