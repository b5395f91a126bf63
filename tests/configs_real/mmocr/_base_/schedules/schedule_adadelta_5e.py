# Mirrors open-mmlab/mmocr tag v0.6.3: configs/_base_/schedules/schedule_adadelta_5e.py
# Verbatim (a _base_ file of the real-config tests).
# optimizer
optimizer = dict(type='Adadelta', lr=1.0)
optimizer_config = dict(grad_clip=None)
# learning policy
lr_config = dict(policy='step', step=[])
# running settings
runner = dict(type='EpochBasedRunner', max_epochs=5)
checkpoint_config = dict(interval=1)
