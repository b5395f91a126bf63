# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/fp16/resnet50_b32x8_fp16_dynamic_imagenet.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = '../resnet/resnet50_8xb32-fp16-dynamic_in1k.py'

_deprecation_ = dict(
    expected='../resnet/resnet50_8xb32-fp16-dynamic_in1k.py',
    reference='https://github.com/open-mmlab/mmclassification/pull/508',
)

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=32, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['accuracy'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['accuracy'], result_keys=[]))
