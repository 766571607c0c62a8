# Single-channel sigmoid head: one logit per pixel, binary cross-entropy, hemorrhage where p > threshold.
_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_cranium-512x512.py'
model = dict(
    decode_head=dict(
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)))
