# crossMoDA 2023 source-domain (ceT1) baseline: the 2021/2022 lr-0.01 config on the 2023 release's four classes
# (background, intra-meatal VS, extra-meatal VS, cochlea), prepared by
#   python tools/prepare_dataset.py crossmoda --src RAW_2023 --out data/crossmoda2023 --spacing 0.41 --crop 256
# VolumeMetric(protocol='crossmoda') scores each structure and vs = intra ∪ extra (comparable with 2021/2022 VS).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
dataset_type = 'CrossMoDA2023Dataset'
data_root = 'data/crossmoda2023/'
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
model = dict(decode_head=dict(num_classes=4))
