# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/swin_transformer/swin-base_16xb64_in1k.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = [
    '../_base_/models/swin_transformer/base_224.py',
    '../_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_swin.py',
    '../_base_/default_runtime.py'
]

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=64, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['accuracy'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]))
