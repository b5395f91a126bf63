# Mirrors open-mmlab/mmsegmentation (pip mmsegmentation==0.30.0) tag v0.30.0: configs/unet/deeplabv3_unet_s5-d16_128x128_40k_chase_db1.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = [
    '../_base_/models/deeplabv3_unet_s5-d16.py',
    '../_base_/datasets/chase_db1.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py'
]
model = dict(test_cfg=dict(crop_size=(128, 128), stride=(85, 85)))
evaluation = dict(metric='mDice')

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=4, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['mDice'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['mDice'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['mDice'], result_keys=[]))
