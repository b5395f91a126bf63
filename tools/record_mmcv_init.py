"""Record what mmcv 1.7.2's BaseModule, fp16 decorators and LossScaler do, for the tests of ``fsm_trainer.mmcv``.

The same scenarios run here on mmcv 1.7.2 (the scratch venv of ``tools/record_mmcv_traces.py``)
and in ``tests/test_mmcv_base_module.py`` / ``tests/test_mmcv_fp16.py`` on ``fsm_trainer.mmcv``:

* :func:`init_cases`: modules with ``init_cfg`` lists, ``layer``, ``override``, ``bias_prob``,
  nested BaseModule containers, a plain child with its own ``init_weights`` and ``Pretrained``
  checkpoints (with ``prefix``), each built and initialised after ``torch.manual_seed(0)``;
  every tensor of the resulting ``state_dict`` is recorded.
* :func:`fp16_scenario`: the dtypes a method decorated with ``auto_fp16``/``force_fp32`` sees
  and returns, on the CPU, before and after ``wrap_fp16_model``.
* :func:`loss_scaler_scenario`: the loss scale after each step of scripted overflow patterns.

Writes ``tests/golden/mmcv_api/init.json``::

    /tmp/mmcvenv/bin/python tools/record_mmcv_init.py

The scenarios only use what they are given (``api``), so the same code runs on both.
"""
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / 'tests/golden/mmcv_api/init.json'
DEFAULT = torch.ones(1)
"""A float32 default argument: the decorators never cast defaults."""


def _modules(api):
    """The module classes of the init cases, built on ``api.BaseModule``."""
    nn = torch.nn

    class ConvBlock(api.BaseModule):

        def __init__(self, init_cfg=None):
            super().__init__(init_cfg)
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 3)

    class Head(api.BaseModule):

        def __init__(self, init_cfg=None):
            super().__init__(init_cfg)
            self.convs = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
            self.cls = nn.Conv2d(4, 3, 1)
            self.reg = nn.Conv2d(4, 2, 1)

    class MyLinear(nn.Linear):
        """Matches ``layer='Linear'`` through its direct base class."""

    class UserInit(nn.Module):
        """A plain child with its own ``init_weights``: the parent calls it."""

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def init_weights(self):
            nn.init.normal_(self.fc.weight, 0.0, 0.5)
            nn.init.constant_(self.fc.bias, -1.0)

    class Net(api.BaseModule):

        def __init__(self, init_cfg=None):
            super().__init__(init_cfg)
            self.backbone = ConvBlock(init_cfg=dict(type='Kaiming', layer='Conv2d', mode='fan_in',
                                                    distribution='uniform', bias=0.1))
            self.neck = api.Sequential(nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4),
                                       init_cfg=dict(type='Xavier', layer='Conv2d', distribution='uniform', gain=2.0))
            self.heads = api.ModuleList(
                [Head(init_cfg=dict(type='Normal', layer='Conv2d', std=0.01,
                                    override=dict(type='Normal', name='cls', std=0.01, bias_prob=0.01))),
                 Head()],
                init_cfg=dict(type='Kaiming', layer='Conv2d', nonlinearity='leaky_relu', a=0.1))
            self.branches = api.ModuleDict({'a': nn.Linear(4, 4), 'b': MyLinear(4, 2)},
                                           init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, a=-0.03, b=0.03))
            self.user = UserInit()
            self.fc = nn.Linear(4, 5)

    class Wrapper(api.BaseModule):
        """A pretrained list entry followed by children with their own ``init_cfg``."""

        def __init__(self, init_cfg=None):
            super().__init__(init_cfg)
            self.block = ConvBlock(init_cfg=dict(type='Constant', layer='Linear', val=0.25, bias=-0.5))
            self.extra = nn.Linear(3, 3)

    return SimpleNamespace(ConvBlock=ConvBlock, Head=Head, Net=Net, Wrapper=Wrapper)


def write_sources(tmp):
    """Checkpoints for the Pretrained cases, written with plain ``torch.save`` (as mmcv's or any tool's)."""
    tmp = Path(tmp)
    g = torch.Generator().manual_seed(123)
    shapes = {'conv.weight': (4, 3, 3, 3), 'conv.bias': (4, ), 'bn.weight': (4, ), 'bn.bias': (4, ),
              'bn.running_mean': (4, ), 'bn.running_var': (4, ), 'fc.weight': (3, 4), 'fc.bias': (3, )}
    weights = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    weights['bn.running_var'] = weights['bn.running_var'].abs()
    weights['bn.num_batches_tracked'] = torch.tensor(7)
    torch.save({'meta': {'epoch': 3}, 'state_dict': {f'module.{k}': v for k, v in weights.items()}}, tmp / 'block.pth')
    det = {f'backbone.{k}': v * 2 for k, v in weights.items()}
    det['head.weight'] = torch.ones(2, 2)
    torch.save(det, tmp / 'det.pth')
    wrapper = {f'block.{k}': v for k, v in weights.items()}
    wrapper['extra.weight'] = torch.full((3, 3), 0.125)
    wrapper['extra.bias'] = torch.full((3, ), -0.125)
    torch.save(wrapper, tmp / 'wrapper.pth')
    return tmp


def init_configs(tmp):
    """``(case, class name, init_cfg)`` of every init case."""
    tmp = Path(tmp)
    return [
        ('layer_list', 'ConvBlock', [dict(type='Kaiming', layer='Conv2d'),
                                     dict(type='Constant', layer='_BatchNorm', val=0.5, bias=0.1),
                                     dict(type='Normal', layer='Linear', std=0.01, bias_prob=0.01)]),
        ('override', 'Head', dict(type='Normal', layer='Conv2d', std=0.01,
                                  override=dict(type='Normal', name='cls', std=0.01, bias_prob=0.01))),
        ('override_name_only', 'Head', dict(type='Constant', val=1, bias=2, layer='Conv2d',
                                            override=dict(name='reg'))),
        ('override_list', 'Head', dict(type='Uniform', layer='Conv2d', a=-0.1, b=0.1,
                                       override=[dict(type='Caffe2Xavier', name='cls'),
                                                 dict(type='Constant', name='reg', val=0.3, layer='Linear')])),
        ('xavier_trunc', 'ConvBlock', [dict(type='Xavier', layer=['Conv2d', 'Linear'], gain=0.5),
                                       dict(type='TruncNormal', layer='BatchNorm2d', mean=1.0, std=0.2)]),
        ('no_layer', 'ConvBlock', dict(type='Normal', std=3.0)),
        ('nested', 'Net', [dict(type='Normal', layer=['Conv2d', 'Linear'], std=0.05),
                           dict(type='Constant', layer='GroupNorm', val=1, bias=0)]),
        ('nested_no_cfg', 'Net', None),
        ('pretrained', 'ConvBlock', dict(type='Pretrained', checkpoint=str(tmp / 'block.pth'))),
        ('pretrained_prefix', 'ConvBlock', dict(type='Pretrained', checkpoint=str(tmp / 'det.pth'),
                                                prefix='backbone')),
        ('pretrained_list', 'Wrapper', [dict(type='Pretrained', checkpoint=str(tmp / 'wrapper.pth')),
                                        dict(type='Constant', layer='Linear', val=2.0)]),
    ]


def _tensor(t):
    return {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape), 'values': t.flatten().tolist()}


def init_cases(api, tmp):
    """Build, seed and initialise every case; return its tensors and the ``is_init`` flags."""
    classes = _modules(api)
    out = {}
    for case, cls, cfg in init_configs(tmp):
        torch.manual_seed(0)
        model = getattr(classes, cls)(init_cfg=cfg)
        model.init_weights()
        flags = {name or '<top>': m.is_init for name, m in model.named_modules() if isinstance(m, api.BaseModule)}
        out[case] = {'tensors': {k: _tensor(v) for k, v in model.state_dict().items()}, 'is_init': flags}
    return out


def _describe(x):
    if isinstance(x, torch.Tensor):
        return str(x.dtype).replace('torch.', '')
    if isinstance(x, np.ndarray):
        return f'ndarray[{x.dtype}]'
    if isinstance(x, dict):
        return {k: _describe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [type(x).__name__, *(_describe(v) for v in x)]
    return type(x).__name__


def fp16_scenario(api):
    """What decorated methods see and return on the CPU, before and after ``wrap_fp16_model``."""
    nn = torch.nn

    class Child(nn.Module):

        def __init__(self):
            super().__init__()
            self.fp16_enabled = False
            self.fc = nn.Linear(2, 2)

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.fp16_enabled = False
            self.child = Child()
            self.plain = nn.Linear(2, 2)

        @api.auto_fp16()
        def every(self, x, y, z, w=DEFAULT, **kw):
            return _describe([x, y, z, w, kw])

        @api.auto_fp16(apply_to=('x', ), out_fp32=True)
        def some(self, x, y):
            return x, y, x * 2, {'h': x}

        @api.auto_fp16(apply_to=('x', 'z'))
        def only_xz(self, x, y, z=None):
            return _describe([x, y, z])

        @api.force_fp32(apply_to=('y', ))
        def only_y(self, x, y):
            return _describe([x, y])

        @api.force_fp32()
        def loss(self, x, y, z):
            return _describe([x, y, z])

        @api.force_fp32(apply_to=('y', ), out_fp16=True)
        def post(self, x, y):
            return x, y, y + 1

        @api.auto_fp16(apply_to=('x', ))
        def nested(self, x):
            return self.inner(x)

        @api.force_fp32(apply_to=('x', ))
        def inner(self, x):
            return _describe(x)

    f32, f16, f64 = torch.ones(2), torch.ones(2, dtype=torch.half), torch.ones(2, dtype=torch.double)
    i64 = torch.ones(2, dtype=torch.long)
    z = {'a': f32, 'b': [f32, f16, 'text'], 'c': np.zeros(2, dtype=np.float32), 'd': (f32, i64)}
    out = {}
    model = Model()
    out['off'] = {
        'every': model.every(f32, i64, z, extra=f32),
        'some': _describe(model.some(f32, f32)),
        'loss': model.loss(f16, f32, f64),
    }
    api.wrap_fp16_model(model)
    out['enabled'] = sorted(name or '<top>' for name, m in model.named_modules() if getattr(m, 'fp16_enabled', False))
    out['has_attribute'] = sorted(name or '<top>' for name, m in model.named_modules() if hasattr(m, 'fp16_enabled'))
    out['weights'] = sorted({str(p.dtype).replace('torch.', '') for p in model.parameters()})
    out['on'] = {
        'every': model.every(f32, i64, z, extra=f32),
        'every_kwargs': model.every(x=f32, y=f64, z=[f32], w=f32),
        'every_default': model.every(f32, f32, f32),
        'some': _describe(model.some(f32, f32)),
        'some_half_input': _describe(model.some(f16, f16)),
        'only_xz': model.only_xz(f32, f32, z=[f32]),
        'only_y': model.only_y(f16, f16),
        'loss': model.loss(f16, f32, f64),
        'loss_kwargs': model.loss(f16, z=f16, y=[f16, i64]),
        'post': _describe(model.post(f16, f16)),
        'nested': model.nested(f32),
    }
    errors = {}
    for name, deco in (('auto_fp16', api.auto_fp16()), ('force_fp32', api.force_fp32())):
        fn = deco(lambda self, x: x)
        try:
            fn(object(), f32)
            errors[name] = None
        except TypeError:
            errors[name] = 'TypeError'
    out['errors'] = errors
    out['cast'] = {
        'float_to_half': _describe(api.cast_tensor_type((f32, [f32, i64, f64], {'k': f16}, 'text', 3),
                                                        torch.float, torch.half)),
        'half_to_float': _describe(api.cast_tensor_type([f16, {'k': f16, 'm': f32}], torch.half, torch.float)),
        'module': type(api.cast_tensor_type(nn.Linear(1, 1), torch.float, torch.half)).__name__,
        'scalar': api.cast_tensor_type(1.5, torch.float, torch.half),
    }
    return out


def loss_scaler_scenario(api):
    """The loss scale after each step of scripted overflow patterns, and the states."""

    def run(scaler, pattern):
        scales = []
        for overflow in pattern:
            scaler.update_scale(overflow)
            scales.append(scaler.loss_scale)
        return scales

    out = {}
    pattern = [False, False, False, True, False, False, False, False, True, True] + [False] * 8
    s = api.LossScaler(init_scale=2**10, scale_window=3)
    out['dynamic'] = {'scales': run(s, pattern), 'state': s.state_dict()}
    s2 = api.LossScaler(init_scale=2**10, scale_window=3)
    s2.load_state_dict(s.state_dict())
    out['resumed'] = run(s2, [False, True, False, False, False])
    floor = api.LossScaler(init_scale=4, scale_factor=3., scale_window=2)
    out['floor'] = run(floor, [True, True, True, False, False, False, True])
    static = api.LossScaler(init_scale=512., mode='static')
    out['static'] = {'scales': run(static, [True, False, True]), 'state': static.state_dict()}
    out['default'] = api.LossScaler().state_dict()
    params = []
    for fill in (1.0, float('inf'), float('nan'), -float('inf')):
        p = torch.nn.Parameter(torch.zeros(3))
        p.grad = torch.full((3, ), fill)
        params.append(p)
    no_grad = torch.nn.Parameter(torch.zeros(3))
    half = torch.nn.Parameter(torch.zeros(3, dtype=torch.half))
    half.grad = torch.full((3, ), 60000.0, dtype=torch.half)  # finite, but its float32 sum is not in fp16 range
    out['has_overflow'] = {
        'finite': api.LossScaler().has_overflow([params[0], no_grad]),
        'inf': api.LossScaler().has_overflow([params[0], params[1]]),
        'nan': api.LossScaler().has_overflow([params[2]]),
        'minus_inf': api.LossScaler().has_overflow([params[3]]),
        'none': api.LossScaler().has_overflow([no_grad]),
        'half_sum': api.LossScaler().has_overflow([half]),
        'static_inf': api.LossScaler(mode='static').has_overflow([params[1]]),
    }
    return out


def main():
    import _mmcv_env  # noqa: F401  (torchvision stub before mmcv.runner)
    from mmcv.runner import (
        BaseModule,
        LossScaler,
        ModuleDict,
        ModuleList,
        Sequential,
        auto_fp16,
        force_fp32,
        wrap_fp16_model,
    )
    from mmcv.runner.fp16_utils import cast_tensor_type

    api = SimpleNamespace(BaseModule=BaseModule, Sequential=Sequential, ModuleList=ModuleList, ModuleDict=ModuleDict,
                          auto_fp16=auto_fp16, force_fp32=force_fp32, wrap_fp16_model=wrap_fp16_model,
                          cast_tensor_type=cast_tensor_type, LossScaler=LossScaler)
    with tempfile.TemporaryDirectory() as tmp:
        write_sources(tmp)
        init = init_cases(api, tmp)
    out = {'torch': torch.__version__, 'init': init, 'fp16': fp16_scenario(api),
           'loss_scaler': loss_scaler_scenario(api)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=None, separators=(',', ':')) + '\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
