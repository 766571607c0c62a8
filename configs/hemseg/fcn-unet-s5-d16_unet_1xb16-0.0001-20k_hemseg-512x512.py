_base_ = './fcn-unet-s5-d16_unet_1xb16-0.01-20k_hemseg-512x512.py'
optimizer = dict(lr=0.0001)
optim_wrapper = dict(optimizer=optimizer)
