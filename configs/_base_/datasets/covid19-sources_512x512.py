# The COVID-19-CT-Seg benchmark's Tasks 2 and 3: train on the split lists of other prepared chest CT datasets (Task 3:
# plus four COVID-19-CT-Seg cases), validate in-domain, test on COVID-19-CT-Seg. Every loader reads
# Covid19MultiSourceDataset: `data_root` is the folder holding the prepared datasets (data/msd-lung, data/covid19,
# ...), each source names one of them (`root`) and one of its split lists (`ann_file`); every source's stored
# classes are read as the subtask's by name (tumour, GTV, pleural effusion -> infection). Prepare each source with
# --split covid19-task2 covid19-task3 for the official lists (configs/covid19/README.md).
_base_ = './covid19_512x512.py'

dataset_type = 'Covid19MultiSourceDataset'
data_root = 'data/'
train_dataloader = dict(dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                                     pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                                   pipeline={{_base_.test_pipeline}}))
test_dataloader = dict(dataset=dict(_delete_=True, type=dataset_type, data_root=data_root,
                                    sources=[dict(root='covid19', ann_file='splits/task2_test.txt')],
                                    pipeline={{_base_.test_pipeline}}))
