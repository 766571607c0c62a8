# COVID-19-CT-Seg Task 2 (learning to segment COVID-19 CT from non-COVID CT), infection subtask, source MSD Task06
# lung tumour (read as the lesion class): train on the benchmark's 51 cases, validate in-domain on its 12, test on
# the 20 COVID-19-CT-Seg cases (published row Task2-MSD; MosMed by the benchmark preset's --mosmed). Needs
#   python tools/prepare_dataset.py msd-lung --src RAW --out data/msd-lung --split covid19-task2 covid19-task3
#   python tools/prepare_dataset.py covid19 --src RAW --out data/covid19
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py', '../_base_/datasets/covid19-sources_512x512.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_20k.py'
]
img_scale = (512, 512)
data_preprocessor = dict(size=img_scale)
optimizer = dict(lr=0.01)
optim_wrapper = dict(optimizer=optimizer)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=2),
    auxiliary_head=None,
    test_cfg=dict(mode='whole', _delete_=True))
subtask = 'infection'
train_dataloader = dict(dataset=dict(subtask=subtask, sources=[
    dict(root='msd-lung', ann_file='splits/covid19_task2_train.txt')]))
val_dataloader = dict(dataset=dict(subtask=subtask, sources=[
    dict(root='msd-lung', ann_file='splits/covid19_task2_val.txt')]))
test_dataloader = dict(dataset=dict(subtask=subtask))
