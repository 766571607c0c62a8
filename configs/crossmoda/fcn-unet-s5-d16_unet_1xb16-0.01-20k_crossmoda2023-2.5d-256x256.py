# crossMoDA 2023, 2.5D: slices k-1, k, k+1 as the input channels (the 2021/2022 2.5D config) on the 2023 release's
# four classes. Same data, model and schedule as fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda2023-256x256.py;
# both side by side: tools/benchmark.py --preset crossmoda2023-2.5d.
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-2.5d-256x256.py'
dataset_type = 'CrossMoDA2023Dataset'
data_root = 'data/crossmoda2023/'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
model = dict(decode_head=dict(num_classes=4))
