# Mirrors open-mmlab/mmdetection (pip mmdet==2.28.2) tag v2.28.2: configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = [
    '../_base_/models/faster_rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=2, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['bbox'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['bbox'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['bbox'], result_keys=[]))
