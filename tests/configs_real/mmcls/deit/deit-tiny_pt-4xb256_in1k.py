# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/deit/deit-tiny_pt-4xb256_in1k.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = './deit-small_pt-4xb256_in1k.py'

# model settings
model = dict(
    backbone=dict(type='VisionTransformer', arch='deit-tiny'),
    head=dict(type='VisionTransformerClsHead', in_channels=192),
)

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=256, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['accuracy'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]))
