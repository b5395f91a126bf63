# The same model trained by iterations: 600 train iterations in segments of 200, each
# followed by 3 val iterations; cosine LR by iteration; a checkpoint every 200 iterations.
#   fsm-trainer train configs/digits_mlp_iter.py
_base_ = ['./_base_/default_runtime.py', './_base_/digits_data.py']

model = dict(type='DigitsNet', hidden=128)
optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
optimizer_config = dict(grad_clip=dict(max_norm=10.0))
# IterBasedRunner: by_epoch=False is the default of lr_config, checkpoint_config and log_config.
lr_config = dict(policy='CosineAnnealing', min_lr=1e-4, warmup='linear', warmup_iters=50)
runner = dict(type='IterBasedRunner', max_iters=600)
workflow = [('train', 200), ('val', 3)]
checkpoint_config = dict(interval=200, max_keep_ckpts=2)
log_config = dict(interval=50)
seed = 0
work_dir = 'work_dirs/digits_mlp_iter'
