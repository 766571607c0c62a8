# COVID-19-CT-Seg Task 2, infection subtask, source StructSeg gross target volume (40 / 10; published row Task2-StructSeg): as the MSD config with
# data/structseg-gtv (prepare_dataset.py structseg-gtv ... --split covid19-task2 covid19-task3).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task2-infection-msd-512x512.py'
train_dataloader = dict(dataset=dict(sources=[dict(root='structseg-gtv', ann_file='splits/covid19_task2_train.txt')]))
val_dataloader = dict(dataset=dict(sources=[dict(root='structseg-gtv', ann_file='splits/covid19_task2_val.txt')]))
