# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/convnext/convnext-tiny_32xb128_in1k.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = [
    '../_base_/models/convnext/convnext-tiny.py',
    '../_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_swin.py',
    '../_base_/default_runtime.py',
]

data = dict(samples_per_gpu=128)

optimizer = dict(lr=4e-3)

custom_hooks = [dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')]

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=128, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['accuracy'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]))
