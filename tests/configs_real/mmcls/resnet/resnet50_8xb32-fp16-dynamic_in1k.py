# Mirrors open-mmlab/mmpretrain (mmcls) tag v0.25.0: configs/resnet/resnet50_8xb32-fp16-dynamic_in1k.py
# Verbatim (a _base_ file of the real-config tests).
_base_ = ['./resnet50_8xb32_in1k.py']

# fp16 settings
fp16 = dict(loss_scale='dynamic')
