# Mirrors open-mmlab/mmocr tag v0.6.3: configs/_base_/schedules/schedule_adadelta_18e.py
# Verbatim (a _base_ file of the real-config tests).
# optimizer
optimizer = dict(type='Adadelta', lr=0.5)
optimizer_config = dict(grad_clip=dict(max_norm=0.5))
# learning policy
lr_config = dict(policy='step', step=[8, 14, 16])
# running settings
runner = dict(type='EpochBasedRunner', max_epochs=18)
checkpoint_config = dict(interval=1)
