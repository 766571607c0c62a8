# The cochlea is tiny (~0.002% of voxels, on a few slices per scan): cross-entropy plus 3 x a per-class soft
# Dice over the batch (ClassDiceLoss), and half of the training draws forced onto slices with a structure.
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_crossmoda-256x256.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='CrossEntropyLoss', loss_name='loss_ce', use_sigmoid=False, loss_weight=1.0),
        dict(type='ClassDiceLoss', loss_name='loss_dice', loss_weight=3.0),
    ]))
train_dataloader = dict(sampler=dict(type='ForegroundOversamplingSampler', fg_fraction=0.5, shuffle=True))
