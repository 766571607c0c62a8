# Class imbalance (hemorrhage is ~0.07% of pixels): cross-entropy plus 3 x a per-class soft Dice over the
# batch (ClassDiceLoss; mmseg's DiceLoss pools all classes of a sample, so background swamps it).
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='CrossEntropyLoss', loss_name='loss_ce', use_sigmoid=False, loss_weight=1.0),
        dict(type='ClassDiceLoss', loss_name='loss_dice', loss_weight=3.0),
    ]))
