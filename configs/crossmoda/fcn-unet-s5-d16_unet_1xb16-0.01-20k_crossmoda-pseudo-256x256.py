# Self-training round on the hrT2 target domain: the labelled ceT1 slices (splits/train.txt) plus the target
# slices with pseudo labels (splits/target_pseudo.txt, masks in pseudo_masks/target_pseudo/, 255 = ignored),
# starting from the source model:
#   python tools/pseudo_label.py configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py \
#       SOURCE.pth --data data/crossmoda --split target --portion 0.6 --out-split target_pseudo
#   mim train mmseg configs/crossmoda/fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-pseudo-256x256.py \
#       --cfg-options load_from=SOURCE.pth
# Another round: pseudo-label with this model into --out-split target_pseudo2 and pass
#   train_dataloader.dataset.datasets.1.ann_file=splits/target_pseudo2.txt
#   train_dataloader.dataset.datasets.1.data_prefix.seg_map_path=pseudo_masks/target_pseudo2/
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
pseudo_split = 'target_pseudo'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type={{_base_.dataset_type}},
                data_root={{_base_.data_root}},
                ann_file='splits/train.txt',
                data_prefix=dict(img_path='images/', seg_map_path='masks/'),
                pipeline={{_base_.train_pipeline}}),
            dict(
                type={{_base_.dataset_type}},
                data_root={{_base_.data_root}},
                ann_file=f'splits/{pseudo_split}.txt',
                data_prefix=dict(img_path='images/', seg_map_path=f'pseudo_masks/{pseudo_split}/'),
                pipeline={{_base_.train_pipeline}}),
        ]))
