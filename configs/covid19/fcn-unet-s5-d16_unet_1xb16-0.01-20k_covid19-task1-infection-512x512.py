# COVID-19-CT-Seg Task 1, the infection model of Task1-Separate: background, infection (the masks of the one prepared
# folder read as subtask infection). Fold 0. Also the model of the MosMed column (configs/covid19/README.md):
#   mim test mmseg <this config> --checkpoint CKPT --cfg-options test_dataloader.dataset.data_root=data/mosmed/ \
#       test_dataloader.dataset.ann_file=splits/test.txt
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
model = dict(decode_head=dict(num_classes=2))
train_dataloader = dict(dataset=dict(subtask='infection'))
val_dataloader = dict(dataset=dict(subtask='infection'))
test_dataloader = val_dataloader
