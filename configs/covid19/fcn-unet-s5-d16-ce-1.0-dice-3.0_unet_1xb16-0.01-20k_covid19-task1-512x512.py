# Task 1 with cross-entropy + 3 x per-class soft Dice (ClassDiceLoss): the infection is ~1% of the pixels.
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_covid19-task1-512x512.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='CrossEntropyLoss', loss_name='loss_ce', use_sigmoid=False, loss_weight=1.0),
        dict(type='ClassDiceLoss', loss_name='loss_dice', loss_weight=3.0),
    ]))
