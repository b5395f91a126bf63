"""Record golden LR/momentum values from the real mmcv 1.7.2 hooks and runners.

Writes ``tests/golden/mmcv_lr.json``: for each scenario (runner kind, run length, loader
length, optimizer layout, ``lr_config``, ``momentum_config``, optional resume point) the lr
and momentum of every param group at every train iteration, read at ``before_train_iter``
by a NORMAL-priority hook (after mmcv's VERY_HIGH LR and HIGH momentum updaters ran).
It also records which bad configs mmcv rejects, and with which exception.

A developer tool, not part of the package; it needs the scratch venv with mmcv 1.7.2 (see
``tools/record_mmcv_traces.py``). From the repository root::

    /work/scratch/mmcv-venv/bin/python tools/record_mmcv_lr.py
"""
import contextlib
import copy
import json
import logging
import tempfile
from pathlib import Path

import torch
from _mmcv_env import EpochBasedRunner, Hook, IterBasedRunner  # mmcv, usable beside a CPU torch

OUT = Path(__file__).resolve().parent.parent / 'tests/golden/mmcv_lr.json'
LOGGER = logging.getLogger('mmcv_lr')
LOGGER.setLevel(logging.ERROR)


class TinyModel(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros(1))
        self.b = torch.nn.Parameter(torch.zeros(1))
        self.c = torch.nn.Parameter(torch.zeros(1))

    def _out(self):
        return dict(loss=torch.tensor(0.0), log_vars={}, num_samples=1)

    def train_step(self, data, optimizer, **kw):
        return self._out()

    def val_step(self, data, optimizer=None, **kw):
        return self._out()


def make_optimizer(kind, model):
    """The optimizer layouts the tests rebuild: see tests/test_schedules_golden.py."""
    a, b, c = model.a, model.b, model.c
    if kind == 'sgd':
        return torch.optim.SGD([
            dict(params=[a]), dict(params=[b], lr=0.05, momentum=0.8),
            dict(params=[c], lr=0.02)
        ], lr=0.1, momentum=0.9)
    if kind == 'adam':
        return torch.optim.Adam([
            dict(params=[a]), dict(params=[b], lr=0.002, betas=(0.8, 0.99)),
            dict(params=[c], lr=0.0005)
        ], lr=0.001, betas=(0.9, 0.999))
    if kind == 'dict':
        return {
            'gen': torch.optim.SGD([dict(params=[a]), dict(params=[b], lr=0.05)], lr=0.1, momentum=0.9),
            'disc': torch.optim.Adam([c], lr=0.001, betas=(0.85, 0.999)),
        }
    raise ValueError(kind)


def groups_of(optimizer):
    if isinstance(optimizer, dict):
        return [g for o in optimizer.values() for g in o.param_groups]
    return optimizer.param_groups


class Recorder(Hook):

    def __init__(self):
        self.lr, self.momentum, self.iters = [], [], []

    def before_train_iter(self, runner):
        groups = groups_of(runner.optimizer)
        self.iters.append([runner.epoch, runner.iter])
        self.lr.append([g['lr'] for g in groups])
        self.momentum.append([g['momentum'] if 'momentum' in g else g['betas'][0] for g in groups])


class Stop(Exception):
    pass


class StopAt(Hook):

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner):
        if runner.iter == self.at:
            raise Stop


class Loader:

    def __init__(self, n):
        self.n = n
        self.sampler = None

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(range(self.n))


def _runner(sc, optimizer, work_dir):
    model = optimizer[1]
    cls = EpochBasedRunner if sc['runner'] == 'epoch' else IterBasedRunner
    runner = cls(model, optimizer=optimizer[0], work_dir=work_dir, logger=LOGGER)
    runner.register_training_hooks(
        lr_config=copy.deepcopy(sc['lr_config']),
        momentum_config=copy.deepcopy(sc['momentum_config']))
    return runner


def _go(runner, sc):
    loaders = [Loader(sc['epoch_len']) for _ in sc['workflow']]
    wf = [tuple(w) for w in sc['workflow']]
    if sc['runner'] == 'epoch':
        runner.run(loaders, wf, max_epochs=sc['max_epochs'])
    else:
        runner.run(loaders, wf, max_iters=sc['max_iters'])


def record(sc):
    with tempfile.TemporaryDirectory() as work_dir:
        model = TinyModel()
        optimizer = make_optimizer(sc['optimizer'], model)
        resume = sc.get('resume_iter')
        if resume is not None:
            # Run until the resume point, keep the optimizer's state (with initial_lr), then
            # start a fresh runner there, as runner.resume() would.
            first = _runner(sc, (optimizer, model), work_dir)
            first.register_hook(StopAt(resume), priority='HIGHEST')
            with contextlib.suppress(Stop):
                _go(first, sc)
            if isinstance(optimizer, dict):
                saved = {k: o.state_dict() for k, o in optimizer.items()}
            else:
                saved = optimizer.state_dict()
            model = TinyModel()
            optimizer = make_optimizer(sc['optimizer'], model)
            if isinstance(optimizer, dict):
                for k, o in optimizer.items():
                    o.load_state_dict(saved[k])
            else:
                optimizer.load_state_dict(saved)
        runner = _runner(sc, (optimizer, model), work_dir)
        if resume is not None:
            runner._iter = resume
            runner._epoch = resume // sc['epoch_len'] if sc['runner'] == 'epoch' else 0
        rec = Recorder()
        runner.register_hook(rec, priority='NORMAL')
        _go(runner, sc)
    return dict(sc, iters=rec.iters, lr=rec.lr, momentum=rec.momentum)


def scenarios():
    E, L, N = 6, 5, 30  # max_epochs, epoch_len, max_iters
    by_epoch_lr = [
        dict(policy='fixed'),
        dict(policy='step', step=[2, 4]),
        dict(policy='step', step=2, gamma=0.5, min_lr=0.02),
        dict(policy='exp', gamma=0.8),
        dict(policy='poly'),
        dict(policy='poly', power=2.0, min_lr=0.001),
        dict(policy='inv', gamma=0.1, power=0.5),
        dict(policy='CosineAnnealing', min_lr=0.001),
        dict(policy='CosineAnnealing', min_lr_ratio=0.01),
        dict(policy='FlatCosineAnnealing', start_percent=0.5, min_lr_ratio=0.1),
        dict(policy='FlatCosineAnnealing', min_lr=0.0),
        dict(policy='CosineRestart', periods=[2, 4], restart_weights=[1, 0.5], min_lr=0.0001),
        dict(policy='CosineRestart', periods=[3, 3], restart_weights=[0.7, 1], min_lr_ratio=0.1),
        dict(policy='LinearAnnealing', min_lr=0.001),
        dict(policy='LinearAnnealing', min_lr_ratio=0.1),
    ]
    iter_lr = [
        dict(policy='fixed'),
        dict(policy='step', step=[10, 20]),
        dict(policy='step', step=7, gamma=0.5, min_lr=0.02),
        dict(policy='exp', gamma=0.95),
        dict(policy='poly', power=0.9, min_lr=0.0001),
        dict(policy='inv', gamma=0.01, power=0.75),
        dict(policy='CosineAnnealing', min_lr=0.0),
        dict(policy='CosineAnnealing', min_lr_ratio=0.05),
        dict(policy='FlatCosineAnnealing', start_percent=0.3, min_lr=0.001),
        dict(policy='CosineRestart', periods=[10, 20], restart_weights=[1, 0.5], min_lr=0.0001),
        dict(policy='CosineRestart', periods=[7, 8, 15], restart_weights=[1, 0.8, 0.6], min_lr_ratio=0.1),
        dict(policy='LinearAnnealing', min_lr_ratio=0.0),
        dict(policy='cyclic', target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4),
        dict(policy='cyclic', target_ratio=(5, 0.1), cyclic_times=2, step_ratio_up=0.3,
             anneal_strategy='linear', gamma=0.5),
        dict(policy='cyclic', target_ratio=4.0, cyclic_times=4, step_ratio_up=0.0, gamma=0.8),
        dict(policy='cyclic', target_ratio=(3.0, ), cyclic_times=3, step_ratio_up=0.5),
        dict(policy='OneCycle', max_lr=0.3),
        dict(policy='OneCycle', max_lr=[0.3, 0.2, 0.1], pct_start=0.25, anneal_strategy='linear'),
        dict(policy='OneCycle', max_lr=0.5, three_phase=True, div_factor=10.0, final_div_factor=100.0),
        dict(policy='OneCycle', max_lr=0.2, total_steps=45, pct_start=0.4),
    ]
    momentum_by_epoch = [
        dict(policy='step', step=[2, 4], gamma=0.5, min_momentum=0.3),
        dict(policy='CosineAnnealing', min_momentum_ratio=0.5),
        dict(policy='LinearAnnealing', min_momentum=0.5),
    ]
    momentum_iter = [
        dict(policy='step', step=9, by_epoch=False),
        dict(policy='CosineAnnealing', min_momentum=0.5, by_epoch=False),
        dict(policy='LinearAnnealing', min_momentum_ratio=0.8, by_epoch=False),
        dict(policy='cyclic', target_ratio=(0.85 / 0.95, 1), cyclic_times=2, step_ratio_up=0.4),
        dict(policy='cyclic', target_ratio=(0.8, 1.1), cyclic_times=1, step_ratio_up=0.3,
             anneal_strategy='linear', gamma=0.9),
        dict(policy='OneCycle'),
        dict(policy='OneCycle', base_momentum=[0.8, 0.7, 0.6], max_momentum=0.95, three_phase=True),
        dict(policy='OneCycle', pct_start=0.4, anneal_strategy='linear'),
    ]
    warmups = [
        dict(warmup='constant', warmup_iters=7, warmup_ratio=0.25),
        dict(warmup='linear', warmup_iters=7, warmup_ratio=0.1),
        dict(warmup='exp', warmup_iters=5, warmup_ratio=0.01),
        dict(warmup='linear', warmup_iters=2, warmup_ratio=0.2, warmup_by_epoch=True),
        dict(warmup='exp', warmup_iters=1, warmup_ratio=0.5, warmup_by_epoch=True),
    ]
    mwarmups = [
        dict(warmup='constant', warmup_iters=6, warmup_ratio=0.9),
        dict(warmup='linear', warmup_iters=7, warmup_ratio=0.8),
        dict(warmup='exp', warmup_iters=5, warmup_ratio=0.95),
    ]

    def ep(lr=None, mom=None, opt='sgd', wf=(('train', 1), ), resume=None, max_epochs=E):
        return dict(runner='epoch', workflow=[list(w) for w in wf], max_epochs=max_epochs,
                    max_iters=None, epoch_len=L, optimizer=opt, lr_config=lr,
                    momentum_config=mom, resume_iter=resume)

    def it(lr=None, mom=None, opt='sgd', resume=None, max_iters=N):
        return dict(runner='iter', workflow=[['train', 1]], max_epochs=None,
                    max_iters=max_iters, epoch_len=L, optimizer=opt, lr_config=lr,
                    momentum_config=mom, resume_iter=resume)

    for c in by_epoch_lr:
        yield ep(c)
        if 'periods' in c:  # periods count iterations when by_epoch=False
            c = dict(c, periods=[p * L for p in c['periods']])
        yield ep(dict(c, by_epoch=False))
    for c in iter_lr:
        yield it(dict(c, by_epoch=False))
        if c['policy'] not in ('cyclic', 'OneCycle') or 'total_steps' in c:
            continue
        yield ep(dict(c, by_epoch=False))
    for w in warmups:
        for c in (by_epoch_lr[1], by_epoch_lr[7], by_epoch_lr[5]):
            yield ep(dict(c, **w))
            yield ep(dict(c, by_epoch=False, **w))
        if not w.get('warmup_by_epoch'):
            for c in (iter_lr[6], iter_lr[12], iter_lr[16]):
                yield it(dict(c, by_epoch=False, **w))
    # a warmup ending exactly at an epoch boundary, and one longer than the run's first epochs
    yield ep(dict(policy='step', step=[1, 3], warmup='linear', warmup_iters=5, warmup_ratio=0.1))
    yield ep(dict(policy='exp', gamma=0.7, warmup='constant', warmup_iters=13, warmup_ratio=0.3))
    for opt in ('sgd', 'adam'):
        for m in momentum_by_epoch:
            yield ep(by_epoch_lr[1], m, opt=opt)
            yield ep(by_epoch_lr[1], dict(m, by_epoch=False), opt=opt)
        for m in momentum_iter:
            yield it(iter_lr[6] | dict(by_epoch=False), m, opt=opt)
        for w in mwarmups:
            yield ep(None, dict(momentum_by_epoch[0], **w), opt=opt)
            yield ep(None, dict(momentum_by_epoch[1], by_epoch=False, **w), opt=opt)
            yield it(None, dict(momentum_iter[3], **w), opt=opt)
    # the usual pairs
    yield it(dict(policy='cyclic', target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4),
             dict(policy='cyclic', target_ratio=(0.85 / 0.95, 1), cyclic_times=1, step_ratio_up=0.4))
    yield it(dict(policy='OneCycle', max_lr=0.4), dict(policy='OneCycle'), opt='adam')
    # a dict of optimizers (GANs)
    yield ep(dict(policy='step', step=[3], warmup='linear', warmup_iters=4),
             dict(policy='CosineAnnealing', min_momentum_ratio=0.5), opt='dict')
    yield it(dict(policy='OneCycle', max_lr={'gen': [0.3, 0.2], 'disc': [0.01]}, by_epoch=False),
             dict(policy='OneCycle', base_momentum={'gen': [0.8, 0.8], 'disc': [0.7]}), opt='dict')
    yield it(dict(policy='CosineAnnealing', min_lr_ratio=0.1, by_epoch=False, warmup='exp', warmup_iters=6),
             dict(policy='cyclic', cyclic_times=2), opt='dict')
    # val epochs in the workflow do not move the schedule
    yield ep(dict(policy='step', step=[2, 4], warmup='linear', warmup_iters=7), None, wf=(('train', 2), ('val', 1)))
    # resume: epoch-based at an epoch boundary, iter-based anywhere, mid-warmup too
    yield ep(dict(policy='step', step=[2, 4], warmup='linear', warmup_iters=2, warmup_by_epoch=True),
             dict(policy='CosineAnnealing', min_momentum_ratio=0.5), resume=10)
    yield ep(dict(policy='CosineAnnealing', min_lr=0.001, by_epoch=False, warmup='exp', warmup_iters=12), resume=10)
    yield ep(dict(policy='poly', power=2.0, warmup='constant', warmup_iters=3), resume=15, opt='adam')
    yield it(dict(policy='CosineAnnealing', min_lr=0.0, by_epoch=False, warmup='linear', warmup_iters=7),
             dict(policy='step', step=9, by_epoch=False), resume=4)
    yield it(dict(policy='cyclic', target_ratio=(5, 0.1), cyclic_times=2, step_ratio_up=0.3, gamma=0.5),
             dict(policy='cyclic', cyclic_times=2), resume=13)
    yield it(dict(policy='OneCycle', max_lr=[0.3, 0.2, 0.1], three_phase=True), dict(policy='OneCycle'), resume=17)
    yield it(dict(policy='CosineRestart', periods=[10, 20], restart_weights=[1, 0.5], min_lr=0.0001,
                  by_epoch=False), opt='dict', resume=21)


# Configs mmcv rejects (at construction or when the run starts); the tests check we reject them.
REJECTS = [
    ('lr', dict(policy='step')),
    ('lr', dict(policy='step', step=0)),
    ('lr', dict(policy='step', step=[2, -1])),
    ('lr', dict(policy='step', step=2.5)),
    ('lr', dict(policy='step', step=[2], warmup='cosine', warmup_iters=3)),
    ('lr', dict(policy='step', step=[2], warmup='linear', warmup_iters=0)),
    ('lr', dict(policy='step', step=[2], warmup='linear', warmup_iters=3, warmup_ratio=0.0)),
    ('lr', dict(policy='step', step=[2], warmup='linear', warmup_iters=3, warmup_ratio=1.5)),
    ('lr', dict(policy='step', step=[2], gama=0.1)),
    ('lr', dict(policy='nonexistent')),
    ('lr', dict(step=[2])),
    ('lr', dict(policy='exp')),
    ('lr', dict(policy='inv', power=1.0)),
    ('lr', dict(policy='CosineAnnealing')),
    ('lr', dict(policy='CosineAnnealing', min_lr=0.1, min_lr_ratio=0.1)),
    ('lr', dict(policy='LinearAnnealing')),
    ('lr', dict(policy='FlatCosineAnnealing', min_lr=0.0, start_percent=1.5)),
    ('lr', dict(policy='FlatCosineAnnealing', min_lr=0.0, start_percent=-0.1)),
    ('lr', dict(policy='CosineRestart', periods=[2, 4], restart_weights=[1], min_lr=0.0)),
    ('lr', dict(policy='CosineRestart', periods=[2, 4], restart_weights=[1, 1])),
    ('lr', dict(policy='cyclic', by_epoch=True)),
    ('lr', dict(policy='cyclic', step_ratio_up=1.0)),
    ('lr', dict(policy='cyclic', gamma=0.0)),
    ('lr', dict(policy='cyclic', gamma=1.5)),
    ('lr', dict(policy='cyclic', anneal_strategy='cosine')),
    ('lr', dict(policy='cyclic', target_ratio=(1.0, 2.0, 3.0))),
    ('lr', dict(policy='cyclic', target_ratio='high')),
    ('lr', dict(policy='OneCycle')),
    ('lr', dict(policy='OneCycle', max_lr=0.1, by_epoch=True)),
    ('lr', dict(policy='OneCycle', max_lr='0.1')),
    ('lr', dict(policy='OneCycle', max_lr=0.1, total_steps=10.0)),
    ('lr', dict(policy='OneCycle', max_lr=0.1, pct_start=1.5)),
    ('lr', dict(policy='OneCycle', max_lr=0.1, anneal_strategy='cosine')),
    ('momentum', dict(policy='step')),
    ('momentum', dict(policy='step', step=[2], warmup='linear', warmup_iters=0)),
    ('momentum', dict(policy='step', step=[2], warmup='triangle', warmup_iters=3)),
    ('momentum', dict(policy='step', step=[2], warmup_by_epoch=True)),
    ('momentum', dict(policy='CosineAnnealing')),
    ('momentum', dict(policy='LinearAnnealing', min_momentum=0.1, min_momentum_ratio=0.1)),
    ('momentum', dict(policy='cyclic', by_epoch=True)),
    ('momentum', dict(policy='cyclic', step_ratio_up=1.0)),
    ('momentum', dict(policy='cyclic', anneal_strategy='triangle')),
    ('momentum', dict(policy='OneCycle', by_epoch=True)),
    ('momentum', dict(policy='OneCycle', pct_start=2.0)),
    ('momentum', dict(policy='OneCycle', base_momentum='0.85')),
    ('momentum', dict(policy='fixed')),
    ('momentum', dict(policy='poly')),
]
# Rejected only when the run starts (they need the run's length): (kind, config, runner, limit)
RUN_REJECTS = [
    ('lr', dict(policy='CosineRestart', periods=[2, 2], min_lr=0.0), 'epoch', 6),
    ('lr', dict(policy='OneCycle', max_lr=0.1, total_steps=20), 'iter', 30),
    ('lr', dict(policy='OneCycle', max_lr=[0.1, 0.2]), 'iter', 30),
    ('lr', dict(policy='step', step=[2], warmup_by_epoch=True, by_epoch=False), 'iter', 30),
    ('lr', dict(policy='cyclic', cyclic_times=40), 'iter', 30),
]


def check_rejects():
    out = []
    for kind, cfg in REJECTS:
        err = _try(kind, cfg, 'epoch', 2)
        assert err is not None, f'mmcv accepted {kind} {cfg}'
        out.append(dict(kind=kind, config=cfg, runner='epoch', limit=2, mmcv_error=err))
    for kind, cfg, runner, limit in RUN_REJECTS:
        err = _try(kind, cfg, runner, limit)
        assert err is not None, f'mmcv accepted {kind} {cfg} in {runner} run'
        out.append(dict(kind=kind, config=cfg, runner=runner, limit=limit, mmcv_error=err))
    return out


def _try(kind, cfg, runner_kind, limit):
    sc = dict(runner=runner_kind, workflow=[['train', 1]], epoch_len=5, optimizer='sgd',
              max_epochs=limit if runner_kind == 'epoch' else None,
              max_iters=limit if runner_kind == 'iter' else None,
              lr_config=cfg if kind == 'lr' else None,
              momentum_config=cfg if kind == 'momentum' else None)
    try:
        with tempfile.TemporaryDirectory() as work_dir:
            model = TinyModel()
            runner = _runner(sc, (make_optimizer('sgd', model), model), work_dir)
            _go(runner, sc)
    except Exception as e:  # recording what mmcv raises is the point
        return f'{type(e).__name__}: {e}'
    return None


def _json_safe(x):
    if isinstance(x, tuple):
        return {'__tuple__': [_json_safe(v) for v in x]}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    return x


def main():
    entries = [record(sc) for sc in scenarios()]
    rejects = check_rejects()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    body = dict(scenarios=[_json_safe(e) for e in entries], rejects=_json_safe(rejects))
    OUT.write_text(json.dumps(body, separators=(',', ':')) + '\n')
    print(f'wrote {len(entries)} scenarios and {len(rejects)} rejects to {OUT} '
          f'({OUT.stat().st_size} bytes)')


if __name__ == '__main__':
    main()
