# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/_base_/models/mobilenet_v2_1x.py
# Verbatim (a _base_ file of the real-config tests).
# model settings
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MobileNetV2', widen_factor=1.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1280,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ))
