"""Record when mmcv 1.7.2 calls a custom ``LoggerHook``'s ``log`` and what it sees, for ``tests/test_mmcv_hook_subclasses.py``.

One training script written against mmcv's runner API (:func:`scenario`) runs twice: here on
mmcv 1.7.2 (the scratch venv of ``tools/record_mmcv_traces.py``), and in the test on
``fsm_trainer.mmcv``. Two ``LoggerHook`` subclasses (one with ``ignore_last=False`` and no
``reset_flag``) sit before the text logger in ``log_config``; an ``EvalHook`` puts its metrics
in the buffer after each train epoch (epoch-based). At each ``log`` call a subclass records
``(runner.iter, runner.inner_iter, get_mode, get_epoch, get_iter, sorted(get_loggable_tags))``.
Writes ``tests/golden/mmcv_api/logger.json``::

    /tmp/mmcvenv/bin/python tools/record_mmcv_logger.py

:func:`scenario` only uses what it is given (``api``), so the same code runs on both.
"""
import json
import logging
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

OUT = Path(__file__).resolve().parent.parent / 'tests/golden/mmcv_api/logger.json'


class Net(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)

    def train_step(self, data, optimizer, **kwargs):
        x, y = data
        loss = torch.nn.functional.cross_entropy(self(x), y)
        return dict(loss=loss, log_vars=dict(loss=loss.item(), acc=float((self(x).argmax(1) == y).float().mean())),
                    num_samples=len(y))

    def val_step(self, data, optimizer=None, **kwargs):
        with torch.no_grad():
            return self.train_step(data, optimizer, **kwargs)


class Data(torch.utils.data.TensorDataset):

    def evaluate(self, results, logger=None, **kwargs):
        preds = torch.cat(results).argmax(1)
        return dict(accuracy=float((preds == self.tensors[1]).float().mean()))


def _data(n=22):
    g = torch.Generator().manual_seed(0)
    return Data(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n, ), generator=g))


def _predict(model, loader):
    with torch.no_grad():
        return [model(x) for x, _ in loader]


def scenario(api, kind):
    """Train with two custom loggers on ``api`` (mmcv.runner or fsm_trainer.mmcv); return their records."""
    records = {}

    def recorder(tag):

        def log(self, runner):
            records.setdefault(tag, []).append([
                runner.iter, runner.inner_iter, self.get_mode(runner), self.get_epoch(runner),
                self.get_iter(runner), sorted(self.get_loggable_tags(runner))
            ])

        name = f'Rec{tag}{kind}LoggerHook'
        cls = type(name, (api.LoggerHook, ), {'log': log})
        api.HOOKS.register_module(name=name, module=cls, force=True)
        return name

    a, b = recorder('A'), recorder('B')
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = torch.utils.data.DataLoader(_data(), batch_size=4)
    val_loader = torch.utils.data.DataLoader(_data(10), batch_size=5)
    logger = logging.getLogger('mmcv_logger_record')
    with tempfile.TemporaryDirectory() as wd:
        if kind == 'epoch':
            runner = api.EpochBasedRunner(model, optimizer=optimizer, work_dir=wd,
                                          logger=logger, max_epochs=3)
            workflow = [('train', 2), ('val', 1)]
        else:
            runner = api.IterBasedRunner(model, optimizer=optimizer, work_dir=wd,
                                         logger=logger, max_iters=11)
            workflow = [('train', 4), ('val', 2)]
        log_config = dict(interval=2, hooks=[
            dict(type=b, interval=3, ignore_last=False),
            dict(type=a),
            dict(type='TextLoggerHook'),
        ])
        runner.register_training_hooks(dict(policy='step', step=[2] if kind == 'epoch' else [6]),
                                       dict(grad_clip=dict(max_norm=1.0)), log_config=log_config,
                                       momentum_config=dict(policy='CosineAnnealing', min_momentum_ratio=0.5,
                                                            by_epoch=kind == 'epoch'))
        if kind == 'epoch':
            runner.register_hook(api.EvalHook(torch.utils.data.DataLoader(_data(10), batch_size=5),
                                              test_fn=_predict), priority='LOW')
        runner.run([loader, val_loader], workflow)
    return records


def main():
    from _mmcv_env import EpochBasedRunner, Hook, IterBasedRunner
    from mmcv.runner import HOOKS, EvalHook, LoggerHook

    api = SimpleNamespace(Hook=Hook, HOOKS=HOOKS, LoggerHook=LoggerHook, EvalHook=EvalHook,
                          EpochBasedRunner=EpochBasedRunner, IterBasedRunner=IterBasedRunner)
    out = {kind: scenario(api, kind) for kind in ('epoch', 'iter')}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + '\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
