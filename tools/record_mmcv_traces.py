"""Record golden hook traces from the real mmcv 1.7.2 runners.

Writes ``tests/golden/mmcv_traces.json``: for each scenario (runner kind,
workflow, max_epochs/max_iters, loader lengths) the ordered list of hook calls
``[point, mode, epoch, iter, inner_iter]`` and the loaders' ``set_epoch`` calls.

This is a developer tool, not part of the package. It needs a scratch venv
holding mmcv 1.7.2 (never a dependency of the project)::

    python3 -m venv /work/scratch/mmcv-venv
    /work/scratch/mmcv-venv/bin/pip install torch==2.13.0 wheel addict yapf \
        pyyaml opencv-python-headless numpy
    # mmcv's setup.py needs pkg_resources; torch only wants newer setuptools
    # at runtime, so downgrading afterwards is harmless here.
    /work/scratch/mmcv-venv/bin/pip install 'setuptools<70'
    MMCV_WITH_OPS=0 /work/scratch/mmcv-venv/bin/pip install \
        --no-build-isolation mmcv==1.7.2

Then, from the repository root::

    /work/scratch/mmcv-venv/bin/python tools/record_mmcv_traces.py
"""
import json
import logging
import tempfile
from pathlib import Path

import torch
from _mmcv_env import EpochBasedRunner, Hook, IterBasedRunner  # mmcv, usable beside a CPU torch

OUT = Path(__file__).resolve().parent.parent / 'tests/golden/mmcv_traces.json'
MAX_TRACE = 100_000  # guard against a scenario that never terminates

POINTS = ('before_run', 'after_run', 'before_epoch', 'after_epoch',
          'before_train_epoch', 'after_train_epoch', 'before_val_epoch',
          'after_val_epoch', 'before_train_iter', 'after_train_iter',
          'before_val_iter', 'after_val_iter')


class TinyModel(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def _out(self):
        return dict(loss=torch.tensor(0.0), log_vars={'loss': 0.0},
                    num_samples=1)

    def train_step(self, data, optimizer, **kw):
        return self._out()

    def val_step(self, data, optimizer=None, **kw):
        return self._out()


class Sampler:

    def __init__(self, index, calls):
        self.index, self.calls = index, calls

    def set_epoch(self, n):
        self.calls.append([self.index, n])


class Loader:

    def __init__(self, n, index, calls):
        self.n = n
        self.sampler = Sampler(index, calls)

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(range(self.n))


def _make_point(name):

    def method(self, runner):
        if len(self.trace) >= MAX_TRACE:
            raise RuntimeError('trace too long: runner does not terminate?')
        self.trace.append(
            [name, runner.mode, runner.epoch, runner.iter, runner.inner_iter])

    method.__name__ = name
    return method


# Overriding every point (including before_epoch etc.) means the base Hook's
# delegation (before_train_epoch -> before_epoch) never fires: each entry is a
# call the runner itself made.
RecordingHook = type('RecordingHook', (Hook, ), {
    '__init__': lambda self: setattr(self, 'trace', []),
    **{p: _make_point(p) for p in POINTS}
})


def record(kind, workflow, limit, loader_lens):
    calls = []
    loaders = [Loader(n, i, calls) for i, n in enumerate(loader_lens)]
    model = TinyModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logger = logging.getLogger('mmcv_traces')
    hook = RecordingHook()
    cls = EpochBasedRunner if kind == 'epoch' else IterBasedRunner
    with tempfile.TemporaryDirectory() as work_dir:
        runner = cls(model, optimizer=optimizer, work_dir=work_dir,
                     logger=logger)
        runner.register_hook(hook, priority='NORMAL')
        key = 'max_epochs' if kind == 'epoch' else 'max_iters'
        runner.run(loaders, [tuple(w) for w in workflow], **{key: limit})
    return {
        'runner': kind,
        'workflow': [list(w) for w in workflow],
        'max_epochs': limit if kind == 'epoch' else None,
        'max_iters': limit if kind == 'iter' else None,
        'loader_lens': loader_lens,
        'trace': hook.trace,
        'set_epoch_calls': calls,
    }


def lens_for(workflow, train_len, val_len):
    return [train_len if m == 'train' else val_len for m, _ in workflow]


def scenarios():
    epoch_wfs = [
        [('train', 1)],
        [('train', 2), ('val', 1)],
        [('val', 1), ('train', 1)],
        [('train', 1), ('val', 2)],
        [('train', 2), ('val', 1), ('train', 1)],
        [('train', 3), ('val', 1)],
        [('val', 2), ('train', 2), ('val', 1)],
    ]
    iter_wfs = [
        [('train', 3)],
        [('train', 3), ('val', 2)],
        [('val', 2), ('train', 3)],
        [('train', 2), ('val', 1), ('train', 1)],
    ]
    seen = set()

    def emit(kind, wf, limit, lens):
        key = (kind, str(wf), limit, str(lens))
        if key not in seen:  # val length is moot for train-only workflows
            seen.add(key)
            yield kind, wf, limit, lens

    for wf in epoch_wfs:
        for max_epochs in (1, 2, 3, 4):
            for tl in (1, 2, 3):
                for vl in (1, 2):
                    yield from emit('epoch', wf, max_epochs,
                                    lens_for(wf, tl, vl))
    yield 'epoch', [('train', 2), ('val', 1)], 0, [1, 2]
    for wf in iter_wfs:
        for max_iters in (1, 4, 7, 10):
            for tl in (2, 3):
                yield from emit('iter', wf, max_iters, lens_for(wf, tl, 2))
    yield 'iter', [('train', 1000), ('val', 100)], 2500, [7, 5]


def main():
    entries = [record(*s) for s in scenarios()]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text('[\n' + ',\n'.join(
        json.dumps(e, separators=(',', ':')) for e in entries) + '\n]\n')
    print(f'wrote {len(entries)} scenarios to {OUT} '
          f'({OUT.stat().st_size} bytes)')


if __name__ == '__main__':
    main()
