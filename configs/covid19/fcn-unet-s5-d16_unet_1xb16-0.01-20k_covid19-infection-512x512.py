# Infection only (prepare with --subtask infection --out data/covid19-infection), Task 1 fold 0; the model for
# the MosMed external test (configs/covid19/README.md):
#   mim test mmseg <this config> --checkpoint CKPT --cfg-options test_dataloader.dataset.data_root=data/mosmed/ \
#       test_dataloader.dataset.ann_file=splits/test.txt
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
data_root = 'data/covid19-infection/'
model = dict(decode_head=dict(num_classes=2))
train_dataloader = dict(dataset=dict(subtask='infection', data_root=data_root))
val_dataloader = dict(dataset=dict(subtask='infection', data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(metrics=[
    dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice']),
    dict(type='VolumeMetric', nsd_tolerance={1: 3.0}),
])
test_evaluator = val_evaluator
