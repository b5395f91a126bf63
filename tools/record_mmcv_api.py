"""Record what mmcv 1.7.2's runners do with class hooks, for ``tests/test_mmcv_api.py``.

One small training script written against mmcv's runner API (:func:`scenario`) runs twice:
here on mmcv 1.7.2 (a scratch venv, see ``tools/record_mmcv_traces.py`` for its set-up), and
in the test on ``fsm_trainer.mmcv``. It records the hook call sequence with the counters each
class hook saw, the LR and momentum before every train iteration, and the final weights,
for an epoch-based and an iter-based runner. Writes ``tests/golden/mmcv_api/golden.json``::

    /tmp/mmcvenv/bin/python tools/record_mmcv_api.py

The ``.log.json`` records of the text logger are kept too, without the keys that measure
time or memory (``time``, ``data_time``, ``memory``, ``eta``).

:func:`scenario` only uses what it is given (``api``), so the same code runs on both.
"""
import json
import logging
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

OUT = Path(__file__).resolve().parent.parent / 'tests/golden/mmcv_api/golden.json'
POINTS = ('before_run', 'after_run', 'before_epoch', 'after_epoch',
          'before_train_epoch', 'after_train_epoch', 'before_val_epoch',
          'after_val_epoch', 'before_train_iter', 'after_train_iter',
          'before_val_iter', 'after_val_iter')

LOG_CONFIG = dict(interval=2, hooks=[dict(type='TextLoggerHook')])
UNTIMED = ('time', 'data_time', 'memory', 'eta')


class Net(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)

    def train_step(self, data, optimizer, **kwargs):
        x, y = data
        loss = torch.nn.functional.cross_entropy(self(x), y) * kwargs.get('scale', 1.0)
        return dict(loss=loss, log_vars=dict(loss=loss.item()), num_samples=len(y))

    def val_step(self, data, optimizer=None, **kwargs):
        with torch.no_grad():
            return self.train_step(data, optimizer, **kwargs)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=g)
    y = torch.randint(0, 3, (20, ), generator=g)
    return torch.utils.data.TensorDataset(x, y)


def scenario(api, kind):
    """Train with class hooks on ``api`` (mmcv.runner or fsm_trainer.mmcv); return what was seen."""
    trace, lrs = [], []

    def point_fn(point):

        def fn(self, runner):
            trace.append([point, runner.mode, runner.epoch, runner.iter,
                          runner.inner_iter])

        return fn

    Recorder = type('Recorder', (api.Hook, ),
                    {p: point_fn(p) for p in POINTS})

    class LrProbe(api.Hook):

        def before_train_iter(self, runner):
            lrs.append([runner.iter, runner.current_lr()[0],
                        runner.current_momentum()[0]])

    name = f'Halving{kind}LrUpdaterHook'

    class Halving(api.LrUpdaterHook):

        def get_lr(self, runner, base_lr):
            return base_lr * 0.5**(runner.iter // 3)

    Halving.__name__ = name
    api.HOOKS.register_module(name=name, module=Halving, force=True)

    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ds = _data()
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    val_loader = torch.utils.data.DataLoader(ds, batch_size=10)
    logger = logging.getLogger('mmcv_api_record')
    with tempfile.TemporaryDirectory() as wd:
        if kind == 'epoch':
            runner = api.EpochBasedRunner(model, optimizer=optimizer, work_dir=wd,
                                          logger=logger, max_epochs=3)
            runner.register_training_hooks(
                dict(policy='step', step=[2], warmup='linear', warmup_iters=3,
                     warmup_ratio=0.1),
                dict(grad_clip=dict(max_norm=1.0)),
                momentum_config=dict(policy='CosineAnnealing',
                                     min_momentum_ratio=0.5),
                log_config=LOG_CONFIG)
            workflow = [('train', 2), ('val', 1)]
        else:
            runner = api.IterBasedRunner(model, optimizer=optimizer, work_dir=wd,
                                         logger=logger, max_iters=10)
            runner.register_training_hooks(
                dict(policy=f'Halving{kind}'), dict(grad_clip=None),
                log_config=LOG_CONFIG)
            workflow = [('train', 4), ('val', 2)]
        runner.register_hook(Recorder())
        runner.register_hook(LrProbe(), priority='LOW')
        runner.run([loader, val_loader], workflow, scale=0.5)
        records = []
        for path in sorted(Path(wd).glob('*.log.json')):
            for line in path.read_text().splitlines():
                rec = json.loads(line)
                records.append({k: v for k, v in rec.items() if k not in UNTIMED})
    return {
        'log': records,
        'trace': trace,
        'lr': lrs,
        'weights': {k: v.flatten().tolist() for k, v in model.state_dict().items()},
    }


def main():
    from _mmcv_env import EpochBasedRunner, Hook, IterBasedRunner
    from mmcv.runner import HOOKS, LrUpdaterHook

    api = SimpleNamespace(Hook=Hook, HOOKS=HOOKS, LrUpdaterHook=LrUpdaterHook,
                          EpochBasedRunner=EpochBasedRunner,
                          IterBasedRunner=IterBasedRunner)
    out = {kind: scenario(api, kind) for kind in ('epoch', 'iter')}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + '\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
