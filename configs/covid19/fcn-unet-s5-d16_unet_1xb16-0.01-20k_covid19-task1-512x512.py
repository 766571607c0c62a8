# COVID-19-CT-Seg Task 1 (learning with limited annotations), 2D U-Net, the joint model (left lung, right lung and
# infection in one model: the benchmark's Task1-Union row): train on the 4 cases of one official fold, test on its 16
# others. Fold 0; another fold by --cfg-options (configs/covid19/README.md):
#   train_dataloader.dataset.ann_file=splits/task1_fold{k}_train.txt
#   val_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt test_dataloader.dataset.ann_file=splits/task1_fold{k}_test.txt
# or all five folds + the benchmark table: python tools/benchmark.py --preset covid19-task1-union --work-dir work_dirs/union
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py', '../_base_/datasets/covid19_512x512.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_20k.py'
]
img_scale = (512, 512)
data_preprocessor = dict(size=img_scale)
optimizer = dict(lr=0.01)
optim_wrapper = dict(optimizer=optimizer)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=4),
    auxiliary_head=None,
    test_cfg=dict(mode='whole', _delete_=True))
