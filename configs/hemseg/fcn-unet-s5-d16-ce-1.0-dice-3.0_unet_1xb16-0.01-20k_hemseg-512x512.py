# Class imbalance (hemorrhage is a small share of pixels and slices), handled the nnU-Net way:
# * cross-entropy plus 3 x a per-class soft Dice over the batch (ClassDiceLoss; mmseg's DiceLoss pools all
#   classes of a sample, so the background swamps it);
# * a third of the training draws forced onto slices that show hemorrhage (ForegroundOversamplingSampler).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-512x512.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='CrossEntropyLoss', loss_name='loss_ce', use_sigmoid=False, loss_weight=1.0),
        dict(type='ClassDiceLoss', loss_name='loss_dice', loss_weight=3.0),
    ]))
train_dataloader = dict(sampler=dict(type='ForegroundOversamplingSampler', fg_fraction=0.33, shuffle=True))
