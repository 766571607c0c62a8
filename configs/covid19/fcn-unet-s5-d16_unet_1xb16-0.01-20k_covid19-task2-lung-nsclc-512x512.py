# COVID-19-CT-Seg Task 2, lung subtask, source NSCLC lungs (322 / 80; published row Task2-NSCLC): as the StructSeg
# config with data/nsclc-lung (prepare_dataset.py nsclc-lung ... --split covid19-task2 covid19-task3).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task2-lung-structseg-512x512.py'
train_dataloader = dict(dataset=dict(sources=[dict(root='nsclc-lung', ann_file='splits/covid19_task2_train.txt')]))
val_dataloader = dict(dataset=dict(sources=[dict(root='nsclc-lung', ann_file='splits/covid19_task2_val.txt')]))
