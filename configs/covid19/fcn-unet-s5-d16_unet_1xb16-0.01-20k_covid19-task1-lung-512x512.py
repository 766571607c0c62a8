# COVID-19-CT-Seg Task 1, the lung model of Task1-Separate: background, left lung, right lung (the masks of the one
# prepared folder read as subtask lung). Fold 0; other folds as in the joint config, or the whole Separate table
# (this and the infection model on every fold): python tools/benchmark.py --preset covid19-task1-separate ...
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
model = dict(decode_head=dict(num_classes=3))
train_dataloader = dict(dataset=dict(subtask='lung'))
val_dataloader = dict(dataset=dict(subtask='lung'))
test_dataloader = val_dataloader
