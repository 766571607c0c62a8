# Brain and bone window as channels 0 and 1 (--window ctich-brain,ctich-bone); otherwise the lr-0.01 config.
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py', '../_base_/datasets/cranium-2w_512x512.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_20k.py'
]
img_scale = (512, 512)
data_preprocessor = dict(size=img_scale, bgr_to_rgb=False)
optimizer = dict(lr=0.01)
optim_wrapper = dict(optimizer=optimizer)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=2),
    auxiliary_head=None,
    test_cfg=dict(mode='whole', _delete_=True))
