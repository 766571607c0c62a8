# COVID-19-CT-Seg Task 2, infection subtask, all three sources in one training set (MSD tumour 51, StructSeg GTV 40,
# NSCLC pleural effusion 63; validation on their 12 + 10 + 15): the benchmark's Task 2 table lists them together,
# its published rows are one model per source (the per-source configs), so this model has no published row.
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task2-infection-msd-512x512.py'
train_dataloader = dict(dataset=dict(sources=[
    dict(root=root, ann_file='splits/covid19_task2_train.txt') for root in ('msd-lung', 'structseg-gtv', 'nsclc-pe')]))
val_dataloader = dict(dataset=dict(sources=[
    dict(root=root, ann_file='splits/covid19_task2_val.txt') for root in ('msd-lung', 'structseg-gtv', 'nsclc-pe')]))
