# Self-training round on the hrT2 target domain: the labelled ceT1 slices plus the target slices with pseudo
# labels (255 = ignored), starting from the source model. tools/pseudo_label.py writes both into one list,
# splits/train+target_pseudo.txt, with every mask under pseudo_masks/target_pseudo/ (train masks hard-linked):
#   python tools/pseudo_label.py configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py \
#       SOURCE.pth --data data/crossmoda --split target --portion 0.6 --out-split target_pseudo
#   mim train mmseg configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-pseudo-256x256.py \
#       --cfg-options load_from=SOURCE.pth
# Another round: pseudo-label with this model into --out-split target_pseudo2 and pass
#   train_dataloader.dataset.ann_file=splits/train+target_pseudo2.txt
#   train_dataloader.dataset.data_prefix.seg_map_path=pseudo_masks/target_pseudo2/
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
train_dataloader = dict(
    dataset=dict(
        ann_file='splits/train+target_pseudo.txt',
        data_prefix=dict(img_path='images/', seg_map_path='pseudo_masks/target_pseudo/')))
