# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/_base_/default_runtime.py
# Verbatim (a _base_ file of the real-config tests).
# checkpoint saving
checkpoint_config = dict(interval=1)
# yapf:disable
log_config = dict(
    interval=100,
    hooks=[
        dict(type='TextLoggerHook'),
        # dict(type='TensorboardLoggerHook')
    ])
# yapf:enable

dist_params = dict(backend='nccl')
log_level = 'INFO'
load_from = None
resume_from = None
workflow = [('train', 1)]
