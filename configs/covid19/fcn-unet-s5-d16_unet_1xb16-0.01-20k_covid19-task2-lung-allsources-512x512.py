# COVID-19-CT-Seg Task 2, lung subtask, both sources in one training set (StructSeg 40 + NSCLC 322; validation 10 + 80);
# no published row (the published rows are one model per source).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task2-lung-structseg-512x512.py'
train_dataloader = dict(dataset=dict(sources=[
    dict(root=root, ann_file='splits/covid19_task2_train.txt') for root in ('structseg-lung', 'nsclc-lung')]))
val_dataloader = dict(dataset=dict(sources=[
    dict(root=root, ann_file='splits/covid19_task2_val.txt') for root in ('structseg-lung', 'nsclc-lung')]))
