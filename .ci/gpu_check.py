"""The GPU checks of convnets, one script (run by .ci/gpu-check): what the `#| gpu` cells check, training throughput against timm's
train benchmark, and CIFAR-10 to 94% against airbench94. Writes results.json and results.md to --out. At most 10 minutes on one
H100/H200; `--dry-run` runs the same code on the CPU with tiny sizes (no GPU needed, seconds), to test the script itself."""
import argparse, copy, importlib.util, json, os, platform, sys, time, traceback
from pathlib import Path
import torch
from convnets.learner import Callback

def first_line(e): return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

def section(results, name, fn, *args):
    "Run `fn(*args)`, store what it returns (or the error) under `results[name]`, with its seconds"
    t0 = time.perf_counter()
    try: out, status = fn(*args), 'ok'
    except Exception as e: out, status = {'error': first_line(e), 'traceback': traceback.format_exc()[-2000:]}, 'failed'
    results[name] = {'status': status, 'seconds': round(time.perf_counter() - t0, 2), **out}
    print(f"[{results[name]['seconds']:7.1f} s] {name}: {status}" + (f" ({out['error']})" if status == 'failed' else ''), flush=True)

class TrainTimer(Callback):
    "A callback timing each training pass, with the device synchronized at both ends"
    order = 100
    def __init__(self, device): self.device, self.times = device, []
    def before_train(self): sync(self.device); self._t = time.perf_counter()
    def after_train(self): sync(self.device); self.times.append(time.perf_counter() - self._t)

def small_learner(device, cbs, n=128, bs=32, px=28):
    "mnist_cnn on random MNIST-shaped data held on `device`, torch SGD, with `cbs`"
    from convnets import models
    from convnets.data.loaders import DataLoaders, InMemoryLoader
    from convnets.learner import Learner
    from convnets.recipes import torch_sgd
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, px, px, generator=g), torch.randint(0, 10, (n,), generator=g)
    dls = DataLoaders(InMemoryLoader(x, y, bs, shuffle=True, seed=0, device=device), InMemoryLoader(x[:bs], y[:bs], bs, device=device))
    torch.manual_seed(0)
    return Learner(models.create('mnist_cnn'), dls, opt_func=torch_sgd, lr=0.05, cbs=cbs, device=device)

def checks(device, compile_check=True):
    "The `#| gpu` cells' checks: fp16 with a gradient scaler, bf16, channels-last, pinned non-blocking copies, torch.compile"
    from convnets.callbacks import ChannelsLast, MixedPrecision, TorchCompile
    from convnets.data.loaders import InMemoryLoader
    class Seen(Callback):
        order = 20
        def after_pred(self): self.dtype, self.xb_cl = self.pred.dtype, self.xb.is_contiguous(memory_format=torch.channels_last)
    out = {}
    learn = small_learner(device, [MixedPrecision('fp16'), seen := Seen()])
    with learn.removed_cbs(learn.progress_cb): learn.fit(1)
    scaler = learn.mixed_precision.scaler
    assert scaler is not None and scaler.get_scale() > 0, 'no gradient scaler'
    assert seen.dtype == torch.float16, seen.dtype
    out['fp16'] = dict(pred_dtype=str(seen.dtype), scale=scaler.get_scale(), valid_loss=learn.recorder.history[-1]['valid_loss'])
    learn = small_learner(device, [MixedPrecision('bf16'), seen := Seen()])
    with learn.removed_cbs(learn.progress_cb): learn.fit(1)
    assert seen.dtype == torch.bfloat16, seen.dtype
    out['bf16'] = dict(pred_dtype=str(seen.dtype), valid_loss=learn.recorder.history[-1]['valid_loss'])
    learn = small_learner(device, [ChannelsLast(), seen := Seen()])
    with learn.removed_cbs(learn.progress_cb): learn.fit(1)
    w = next(p for p in learn.model.parameters() if p.ndim == 4)
    assert seen.xb_cl and w.is_contiguous(memory_format=torch.channels_last)
    out['channels_last'] = dict(batch=seen.xb_cl, weights=True)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    dl = InMemoryLoader(x, y, 16, device=device, preload=False, non_blocking=True)
    got = [(xb, yb) for xb, yb in dl]
    sync(device)
    assert all(xb.device.type == device.type for xb, _ in got)
    assert torch.equal(torch.cat([xb.cpu() for xb, _ in got]), x) and torch.equal(torch.cat([yb.cpu() for _, yb in got]), y)
    out['pin_memory_non_blocking'] = dict(batches=len(got), pinned_path=device.type == 'cuda', equal=True)
    if not compile_check: return out
    learn = small_learner(device, [TorchCompile()])
    t0 = time.perf_counter()
    with learn.removed_cbs(learn.progress_cb): learn.fit(2)
    out['torch_compile'] = dict(epochs=2, seconds=round(time.perf_counter() - t0, 2), valid_loss=learn.recorder.history[-1]['valid_loss'])
    return out

def ours_rate(arch, device, bs, px, steps):
    "Training images/s of our `Learner` on `arch`: bf16 autocast, channels-last, fused SGD, random images already on the device"
    from convnets import models
    from convnets.callbacks import ChannelsLast, MixedPrecision
    from convnets.data.loaders import DataLoaders, InMemoryLoader
    from convnets.learner import Learner
    from convnets.recipes import torch_sgd
    x = torch.randn(bs * steps, 3, px, px, device=device)
    y = torch.randint(0, 1000, (bs * steps,), device=device)
    dls = DataLoaders(InMemoryLoader(x, y, bs, shuffle=True, seed=0), InMemoryLoader(x[:bs], y[:bs], bs))
    timer = TrainTimer(device)
    learn = Learner(models.create(arch), dls, opt_func=torch_sgd, lr=1e-4, device=device,
                    cbs=[ChannelsLast(), MixedPrecision('bf16'), timer])
    with learn.removed_cbs(learn.progress_cb):
        learn.fit(1)                        # warm-up: cuDNN's algorithm search, allocator
        learn.fit(1)
    return bs * steps / timer.times[-1]

TIMM_NAMES = {'mobilenet_v2': 'mobilenetv2_100'}   # timm's names where they differ from ours

def timm_rate(arch, device, bs, px, steps, warm):
    "Training images/s of timm's `arch` in the loop of timm's benchmark.py train runner: channels-last, bf16 autocast, SGD, random data"
    import timm
    from timm.optim import create_optimizer_v2
    model = timm.create_model(arch).to(device, memory_format=torch.channels_last).train()
    opt, loss = create_optimizer_v2(model, opt='sgd', lr=1e-4), torch.nn.CrossEntropyLoss()
    x = torch.randn(bs, 3, px, px, device=device).contiguous(memory_format=torch.channels_last)
    def step():
        opt.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = model(x)
            loss(out, torch.randint(0, out.shape[1], (bs,), device=device)).backward()
        opt.step()
    for _ in range(warm): step()
    sync(device); t0 = time.perf_counter()
    for _ in range(steps): step()
    sync(device)
    return bs * steps / (time.perf_counter() - t0)

def throughput(device, dry):
    "resnet50 and mobilenet_v2, batch 256 (dry run: 4), bf16, channels-last: our images/s, timm's, and the ratio"
    bs, px, steps, warm = (4, 32, 2, 1) if dry else (256, 224, 40, 10)
    out = {}
    for arch in ('resnet50', 'mobilenet_v2'):
        row = dict(batch=bs, px=px, steps=steps, ours=round(ours_rate(arch, device, bs, px, steps), 1))
        if importlib.util.find_spec('timm'):
            row['timm'] = round(timm_rate(TIMM_NAMES.get(arch, arch), device, bs, px, steps, warm), 1)
            row['ratio'] = round(row['ours'] / row['timm'], 3)
        else: row['timm'] = 'timm is not installed here'
        out[arch] = row
    return out

def cifar10(device, dry, recipe):
    "CIFAR-10 to 94%: airbench94 where the airbench package was handed, and our recipe `recipe` where one is registered"
    out = {}
    if dry: return {'note': 'dry run: not trained'}
    if importlib.util.find_spec('airbench'):
        import airbench
        t0 = time.perf_counter(); airbench.train94(); out['airbench94_s'] = round(time.perf_counter() - t0, 2)
    else: out['airbench94'] = 'not run: no airbench wheel was handed'
    from convnets.recipes import RECIPES, resolve_run, train
    if recipe is None or recipe not in RECIPES: out['ours'] = f'not run: no CIFAR-10 recipe {recipe!r} is registered'
    else:
        res = train(resolve_run(recipe, device='cuda', output='gpu-runs/cifar10'))
        out['ours'] = dict(recipe=recipe, seconds=res['seconds'], accuracy=res['final'].get('accuracy'))
        if 'airbench94_s' in out: out['ratio'] = round(res['seconds'] / out['airbench94_s'], 3)
    return out

def markdown(r):
    "The results as a short markdown report"
    lines = [f"# GPU check{' (dry run on the CPU)' if r['dry_run'] else ''}", '', f"device: {r['device']}; torch {r['torch']}; {r['date']}", '']
    for name in ('checks', 'throughput', 'cifar10'):
        s = r[name]
        lines.append(f"## {name}: {s['status']} ({s['seconds']} s)")
        lines += [f"- {k}: {v}" for k, v in s.items() if k not in ('status', 'seconds', 'traceback')] + ['']
    return '\n'.join(lines)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--out', type=Path, default=Path('gpu-results'), help='folder for results.json and results.md')
    p.add_argument('--dry-run', action='store_true', help='run on the CPU with tiny sizes, to test this script')
    p.add_argument('--no-compile', action='store_true', help='leave out the torch.compile check (about a minute on a small CPU)')
    p.add_argument('--cifar-recipe', default=None, help='our CIFAR-10 recipe to time against airbench94 (default: none)')
    a = p.parse_args(argv)
    if not a.dry_run and not torch.cuda.is_available(): p.error('no CUDA GPU here (use --dry-run to test the script on a CPU)')
    device = torch.device('cpu' if a.dry_run else 'cuda')
    if device.type == 'cuda': torch.backends.cudnn.benchmark = True
    import convnets
    r = dict(dry_run=a.dry_run, device=torch.cuda.get_device_name() if device.type == 'cuda' else f'cpu ({platform.processor() or "CPU"})',
             torch=torch.__version__, convnets=convnets.__version__, date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    section(r, 'checks', checks, device, not a.no_compile)
    section(r, 'throughput', throughput, device, a.dry_run)
    section(r, 'cifar10', cifar10, device, a.dry_run, a.cifar_recipe)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out/'results.json').write_text(json.dumps(r, indent=1))
    (a.out/'results.md').write_text(markdown(r))
    print(f"results in {a.out}/results.json and results.md")
    return 0 if all(r[k]['status'] == 'ok' for k in ('checks', 'throughput', 'cifar10')) else 1

if __name__ == '__main__': sys.exit(main())
