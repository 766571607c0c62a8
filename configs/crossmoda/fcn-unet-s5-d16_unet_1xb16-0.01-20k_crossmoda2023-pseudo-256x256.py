# crossMoDA 2023 self-training round on the T2 target domain (TrainingTarget → splits/target.txt), as the
# 2021/2022 -pseudo config: the labelled ceT1 slices plus the target slices with pseudo labels (255 = ignored):
#   python tools/pseudo_label.py configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda2023-256x256.py \
#       SOURCE.pth --data data/crossmoda2023 --split target --portion 0.6 --out-split target_pseudo
#   mim train mmseg configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda2023-pseudo-256x256.py \
#       --cfg-options load_from=SOURCE.pth
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda2023-256x256.py'
train_dataloader = dict(
    dataset=dict(
        ann_file='splits/train+target_pseudo.txt',
        data_prefix=dict(img_path='images/', seg_map_path='pseudo_masks/target_pseudo/')))
