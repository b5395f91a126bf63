# scikit-learn's bundled 8x8 digits: 1437 train / 359 val images, split by seed 0. No download.
data = dict(
    samples_per_gpu=32,
    workers_per_gpu=0,
    train=dict(type='DigitsDataset', split='train', seed=0),
    val=dict(type='DigitsDataset', split='val', seed=0),
    val_dataloader=dict(samples_per_gpu=128),
)
