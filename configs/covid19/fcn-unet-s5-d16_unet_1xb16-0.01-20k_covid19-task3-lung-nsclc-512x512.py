# COVID-19-CT-Seg Task 3 (learning with COVID-19 and non-COVID CT), fold 0: the Task 2 source (data/nsclc-lung) plus the
# four COVID-19-CT-Seg training cases of Task 1 fold 0, validated in-domain, tested on that fold's 16 cases (published
# row Task3-NSCLC). Fold k: replace fold0 by fold{k} in the four lists (or run python tools/benchmark.py --preset
# covid19-task3-lung).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task2-lung-nsclc-512x512.py'
train_dataloader = dict(dataset=dict(sources=[dict(root='nsclc-lung', ann_file='splits/covid19_task3_fold0_train.txt'),
                                              dict(root='covid19', ann_file='splits/task1_fold0_train.txt')]))
val_dataloader = dict(dataset=dict(sources=[dict(root='nsclc-lung', ann_file='splits/covid19_task3_fold0_val.txt')]))
test_dataloader = dict(dataset=dict(sources=[dict(root='covid19', ann_file='splits/task1_fold0_test.txt')]))
