# COVID-19-CT-Seg Task 2, infection subtask, source NSCLC pleural effusion (63 / 15; published row Task2-NSCLC): as the MSD config with
# data/nsclc-pe (prepare_dataset.py nsclc-pe ... --split covid19-task2 covid19-task3).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task2-infection-msd-512x512.py'
train_dataloader = dict(dataset=dict(sources=[dict(root='nsclc-pe', ann_file='splits/covid19_task2_train.txt')]))
val_dataloader = dict(dataset=dict(sources=[dict(root='nsclc-pe', ann_file='splits/covid19_task2_val.txt')]))
