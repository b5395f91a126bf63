# Mirrors open-mmlab/mmsegmentation (pip mmsegmentation==0.30.0) tag v0.30.0: configs/_base_/default_runtime.py
# Verbatim (a _base_ file of the real-config tests).
# yapf:disable
log_config = dict(
    interval=50,
    hooks=[
        dict(type='TextLoggerHook', by_epoch=False),
        # dict(type='TensorboardLoggerHook')
        # dict(type='PaviLoggerHook') # for internal services
    ])
# yapf:enable
dist_params = dict(backend='nccl')
log_level = 'INFO'
load_from = None
resume_from = None
workflow = [('train', 1)]
cudnn_benchmark = True
