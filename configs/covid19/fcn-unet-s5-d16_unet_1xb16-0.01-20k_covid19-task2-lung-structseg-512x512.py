# COVID-19-CT-Seg Task 2, lung subtask (left lung, right lung), source StructSeg 2019 thoracic OAR lungs: train on the
# benchmark's 40 cases, validate in-domain on its 10, test on the 20 COVID-19-CT-Seg cases (published row
# Task2-StructSeg). Needs prepare_dataset.py structseg-lung --src RAW --out data/structseg-lung --split covid19-task2
# covid19-task3, and data/covid19.
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task2-infection-msd-512x512.py'
model = dict(decode_head=dict(num_classes=3))
subtask = 'lung'
train_dataloader = dict(dataset=dict(subtask=subtask, sources=[
    dict(root='structseg-lung', ann_file='splits/covid19_task2_train.txt')]))
val_dataloader = dict(dataset=dict(subtask=subtask, sources=[
    dict(root='structseg-lung', ann_file='splits/covid19_task2_val.txt')]))
test_dataloader = dict(dataset=dict(subtask=subtask))
