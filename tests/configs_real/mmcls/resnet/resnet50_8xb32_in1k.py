# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/resnet/resnet50_8xb32_in1k.py
# Verbatim (a _base_ file of the real-config tests).
_base_ = [
    '../_base_/models/resnet50.py', '../_base_/datasets/imagenet_bs32.py',
    '../_base_/schedules/imagenet_bs256.py', '../_base_/default_runtime.py'
]
