# Mirrors open-mmlab/mmocr tag v0.6.3: configs/_base_/schedules/schedule_sgd_1200e.py
# Verbatim (a _base_ file of the real-config tests).
# optimizer
optimizer = dict(type='SGD', lr=0.007, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
# learning policy
lr_config = dict(policy='poly', power=0.9, min_lr=1e-7, by_epoch=True)
# running settings
runner = dict(type='EpochBasedRunner', max_epochs=1200)
checkpoint_config = dict(interval=100)
