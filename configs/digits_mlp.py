# The digits example as an mmcv 1.x config: train + val each epoch, step LR with warmup,
# a checkpoint every 5 epochs (the last 2 kept), mmcv log lines every 20 iterations.
#   fsm-trainer train configs/digits_mlp.py
_base_ = ['./_base_/default_runtime.py', './_base_/digits_data.py']

model = dict(type='DigitsNet', hidden=128)
optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', step=[14, 18], warmup='linear', warmup_iters=50, warmup_ratio=0.1)
runner = dict(type='EpochBasedRunner', max_epochs=20)
workflow = [('train', 1), ('val', 1)]
checkpoint_config = dict(interval=5, max_keep_ckpts=2)
seed = 0
work_dir = 'work_dirs/digits_mlp'
# Accuracy of the val set after every train epoch; the best checkpoint is kept as best_accuracy_*.
evaluation = dict(interval=1, metric='accuracy', save_best='accuracy')
