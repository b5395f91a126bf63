# Mirrors open-mmlab/mmocr tag v0.6.3: configs/textrecog/crnn/crnn_academic_dataset.py
# Verbatim, with the model and the datasets swapped for the digits example at the end (tests/test_real_configs.py).
_base_ = [
    '../../_base_/default_runtime.py', '../../_base_/recog_models/crnn.py',
    '../../_base_/recog_pipelines/crnn_pipeline.py',
    '../../_base_/recog_datasets/MJ_train.py',
    '../../_base_/recog_datasets/academic_test.py',
    '../../_base_/schedules/schedule_adadelta_5e.py'
]

train_list = {{_base_.train_list}}
test_list = {{_base_.test_list}}

train_pipeline = {{_base_.train_pipeline}}
test_pipeline = {{_base_.test_pipeline}}

data = dict(
    samples_per_gpu=64,
    workers_per_gpu=4,
    val_dataloader=dict(samples_per_gpu=1),
    test_dataloader=dict(samples_per_gpu=1),
    train=dict(
        type='UniformConcatDataset',
        datasets=train_list,
        pipeline=train_pipeline),
    val=dict(
        type='UniformConcatDataset',
        datasets=test_list,
        pipeline=test_pipeline),
    test=dict(
        type='UniformConcatDataset',
        datasets=test_list,
        pipeline=test_pipeline))

evaluation = dict(interval=1, metric='acc')

cudnn_benchmark = True

# ---- swapped for the digits example (the rest of the file is the real one)
custom_imports = dict(imports=['tests.configs_real.digits_support', 'tests.configs_real.downstream_hooks'])
model = dict(_delete_=True, type='DigitsNet')
data = dict(_delete_=True, samples_per_gpu=64, workers_per_gpu=0,
            train=dict(type='DigitsEvalDataset', split='train', metrics=['acc'], result_keys=[]),
            val=dict(type='DigitsEvalDataset', split='val', metrics=['acc'], result_keys=[]),
            test=dict(type='DigitsEvalDataset', split='val', metrics=['acc'], result_keys=[]))
