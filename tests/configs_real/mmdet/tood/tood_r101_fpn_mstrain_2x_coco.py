# Mirrors open-mmlab/mmdetection (pip mmdet==2.28.2) tag v2.28.2: configs/tood/tood_r101_fpn_mstrain_2x_coco.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = './tood_r50_fpn_mstrain_2x_coco.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=2, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['bbox'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['bbox'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['bbox'], result_keys=[]))
