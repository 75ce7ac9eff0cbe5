import contextlib, copy, ctypes, glob, importlib.util, io, json, logging, os, statistics, subprocess, sys, tempfile, textwrap, time, warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
import numpy as np
import torch, torch.nn.functional as F
from torch import nn
from . import models
from .machine import benchmark, latency, machine_info, num_threads
from .registry import Registry
@dataclass(frozen=True)
class BenchConfig:
    "What a benchmark is asked for: `quick` (tiny inputs, seconds), `threads` for both sides (None: PyTorch's), and mnist-99's `seeds`, `precision`, `data_dir`"
    quick: bool = False
    threads: int | None = None
    seeds: tuple = (0, 1, 2)
    precision: str | None = None
    data_dir: str | None = None

    @property
    def n_threads(self):
        "The thread count both sides run on"
        return self.threads or torch.get_num_threads()

    def repeats(self, full=5):
        "How many interleaved repeats: 2 when quick, else `full`"
        return 2 if self.quick else full
_OPS = {'<=': (float.__le__, '≤'), '>=': (float.__ge__, '≥')}

@dataclass
class Row:
    "One line of a table: the `case`, our figure, the comparison's (None: not measured here), their `unit`, and a `target` `(op, value)` on the ratio (or, with `points`, on our accuracy minus theirs in points)"
    case: str
    ours: float
    theirs: float | None = None
    unit: str = 's'
    target: tuple | None = None
    points: bool = False

    @property
    def ratio(self):
        "Ours over theirs (with `points`: the difference in percentage points); None without a comparison"
        if self.theirs is None: return None
        return 100 * (self.ours - self.theirs) if self.points else self.ours / self.theirs

    def met(self):
        "Whether the ratio meets the target: True, False, or None (no target or no comparison)"
        if self.target is None or self.ratio is None: return None
        return _OPS[self.target[0]][0](float(self.ratio), float(self.target[1]))

@dataclass
class BenchResult:
    "What a benchmark measured: its `name`, one line on what is compared with what (`title`), the `rows`, the threads, whether quick, the machine line at the start and at the end, and notes"
    name: str
    title: str
    rows: list
    threads: int
    quick: bool
    machine_start: str
    machine_end: str
    notes: list = field(default_factory=list)

    def to_dict(self):
        "The result as plain data (for JSON), each row with its ratio and whether it met its target"
        return {**asdict(self), 'rows': [{**asdict(r), 'ratio': r.ratio, 'met': r.met()} for r in self.rows]}
def _fmt(v, unit):
    "Figure `v` in `unit`: seconds as ms or s, fractions as percentages, anything else with 4 significant digits"
    if v is None: return '—'
    if unit == 's': return f'{v * 1e3:.2f} ms' if v < 1 else f'{v:.2f} s'
    if unit == '%': return f'{v:.2%}'
    return f'{v:,.4g} {unit}'.strip()

def _ratio(r):
    if r.ratio is None: return '—'
    return f'{r.ratio:+.2f} pt' if r.points else f'{r.ratio:.2f}'

def _target(r, quick):
    if r.target is None: return ''
    op, v = r.target
    text = f"{_OPS[op][1]} {v:g}{' pt' if r.points else ''}"
    met = r.met()
    return f"{text}: {'not assessed (quick)' if quick else '—' if met is None else 'met' if met else 'missed'}"

def render(res):
    "The result as one text table: case, ours, theirs, ratio (ours / theirs) and target, under a title and over the notes and machine lines"
    head = f"convnets bench {res.name}{' --quick (tiny inputs: a smoke test; targets not assessed)' if res.quick else ''}"
    rows = [(r.case, _fmt(r.ours, r.unit), _fmt(r.theirs, r.unit), _ratio(r), _target(r, res.quick)) for r in res.rows]
    rows = [('case', 'ours', 'theirs', 'ratio', 'target')] * bool(rows) + rows
    w = [max([len(row[i]) for row in rows], default=0) for i in range(5)]
    lines = [head, res.title] + [f'{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}  {d:>{w[3]}}  {e}'.rstrip() for a, b, c, d, e in rows]
    lines += [f'note: {n}' for n in res.notes]
    return '\n'.join(lines + [f'machine at start: {res.machine_start}', f'machine at end:   {res.machine_end}'])
BENCHMARKS = Registry('benchmark')

def register_benchmark(name):
    "Decorator: add a benchmark, a function of a `BenchConfig` returning `(title, rows, notes)`, to `BENCHMARKS` under `name`"
    def deco(fn): return BENCHMARKS.register(name, fn)
    return deco

def run_benchmark(name, cfg=BenchConfig()):
    "Run benchmark `name` under `cfg` on `cfg.n_threads` threads; the `BenchResult`, with the machine line before and after"
    fn = BENCHMARKS[name]
    with num_threads(cfg.n_threads):
        start = machine_info()
        title, rows, notes = fn(cfg)
        end = machine_info()
    return BenchResult(name, title, rows, cfg.n_threads, cfg.quick, start, end, list(notes))

def bench_main(name, quick=False, threads=None, seeds=(0, 1, 2), precision=None, data_dir=None, out=None):
    "`convnets bench NAME` (or `all`): run, print each table as it is done, write them as JSON to `out` if given; returns the results"
    names = BENCHMARKS.names() if name == 'all' else [name]
    cfg = BenchConfig(quick, threads, tuple(seeds), precision, None if data_dir is None else str(data_dir))
    results = []
    for n in names:
        results.append(res := run_benchmark(n, cfg))
        print(render(res), end='\n\n', flush=True)
    if out is not None:
        from .files import atomic_write
        with atomic_write(out, 'w') as f: json.dump([r.to_dict() for r in results], f, indent=1)
    return results
@contextlib.contextmanager
def quiet():
    "Swallow what the timed code prints, logs as a warning or displays (progress bars, epoch tables), in a terminal or a notebook"
    try: from IPython.utils.capture import capture_output
    except ImportError: capture_output = contextlib.nullcontext
    log, level = logging.getLogger('torch'), logging.getLogger('torch').level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), capture_output():
        warnings.simplefilter('ignore'); log.setLevel(logging.ERROR)
        try: yield
        finally: log.setLevel(level)

def timed(fns, cfg, full=5):
    "Median seconds of each callable in dict `fns`, interleaved A B A B after one warm-up each, quietly, on `cfg`'s threads"
    with quiet(): return benchmark(fns, repeats=cfg.repeats(full), warmup=1, threads=cfg.n_threads)

def has(module):
    "True if `module` can be imported here (a peer framework, torchvision, torch_xla...)"
    return importlib.util.find_spec(module) is not None
def batch_loader(x, y, bs, shuffle=False):
    "PyTorch's `DataLoader` over tensors `x`, `y` taking whole batches (automatic batching off, one index list per batch): the fast plain-PyTorch way"
    ds = torch.utils.data.TensorDataset(x, y)
    order = torch.utils.data.RandomSampler(ds) if shuffle else torch.utils.data.SequentialSampler(ds)
    return torch.utils.data.DataLoader(ds, sampler=torch.utils.data.BatchSampler(order, bs, drop_last=False), batch_size=None)

def plain_fit(model, train, valid, opt, epochs=1):
    "PyTorch's tutorial loop: train on every batch of `train`, then the loss and accuracy on `valid` without gradients; returns both"
    for _ in range(epochs):
        model.train()
        for xb, yb in train:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward(); opt.step(); opt.zero_grad()
        model.eval(); total, correct, n = 0., 0, 0
        with torch.no_grad():
            for xb, yb in valid:
                out = model(xb)
                total += F.cross_entropy(out, yb, reduction='sum').item(); correct += (out.argmax(1) == yb).sum().item(); n += len(yb)
    return total / n, correct / n
def _fastai_fit(model, train, valid, lr):
    "fastai's documented way with PyTorch loaders and optimizer: `DataLoaders`, `Learner` with `OptimWrapper`, `fit`"
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastai.optimizer import OptimWrapper
    opt = partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9)
    return lambda: Learner(DataLoaders(train, valid), model, loss_func=F.cross_entropy, opt_func=opt, metrics=accuracy).fit(1, lr)

def _lightning_fit(model, train, valid, lr):
    "Lightning's documented way: a `LightningModule` with training and validation steps, a `Trainer` on the CPU for one epoch"
    import lightning as L
    logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
    class Lit(L.LightningModule):
        def __init__(self): super().__init__(); self.model = model
        def training_step(self, b, i): return F.cross_entropy(self.model(b[0]), b[1])
        def validation_step(self, b, i):
            out = self.model(b[0])
            self.log_dict({'val_loss': F.cross_entropy(out, b[1]), 'val_acc': (out.argmax(1) == b[1]).float().mean()})
        def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=lr, momentum=0.9)
    lit = Lit()
    def fit():
        trainer = L.Trainer(max_epochs=1, accelerator='cpu', devices=1, logger=False, enable_checkpointing=False,
                            enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(lit, train, valid)
    return fit

@register_benchmark('loop')
def bench_loop(cfg):
    "`Learner.fit` with its default callbacks against PyTorch's tutorial loop, and fastai's `Learner` and Lightning's `Trainer` where installed"
    from .data.loaders import DataLoaders
    from .learner import Learner
    from .metrics import accuracy
    n, bs, lr = (256, 64, 0.05) if cfg.quick else (12_800, 64, 0.05)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n + n // 5, 1, 28, 28, generator=g), torch.randint(0, 10, (n + n // 5,), generator=g)
    train, valid = batch_loader(x[:n], y[:n], bs, shuffle=True), batch_loader(x[n:], y[n:], 2 * bs)
    torch.manual_seed(0)
    net = models.create('mnist_cnn')
    nets = {k: copy.deepcopy(net) for k in ('ours', 'plain', 'fastai', 'lightning')}
    sgd = partial(torch.optim.SGD, momentum=0.9)
    plain_opt = sgd(nets['plain'].parameters(), lr=lr)
    fns = {'ours': lambda: Learner(nets['ours'], DataLoaders(train, valid), opt_func=sgd, lr=lr, metrics=[accuracy]).fit(1),
           'plain': lambda: plain_fit(nets['plain'], train, valid, plain_opt)}
    notes = []
    for k, make in (('fastai', _fastai_fit), ('lightning', _lightning_fit)):
        if has(k): fns[k] = make(nets[k], train, valid, lr)
        else: notes.append(f"{k} is not installed here: it runs in the peers environment (chapter 11)")
    t = timed(fns, cfg)
    names = {'plain': ("PyTorch's tutorial loop", 1.03), 'fastai': ("fastai's Learner.fit", 1.0), 'lightning': ("Lightning's Trainer.fit", 1.0)}
    rows = [Row(f'one epoch against {names[k][0]}', t['ours'], t[k], target=('<=', names[k][1])) for k in fns if k != 'ours']
    title = (f"Learner.fit (default callbacks) against plain PyTorch and peers: mnist_cnn, {n:,} + {n // 5:,} random MNIST-shaped images, "
             f"batch {bs}, SGD momentum 0.9, the same batches for all; one epoch with validation, median of {cfg.repeats()} interleaved")
    notes.append("Lightning runs without logger, checkpoint, model summary and sanity check (its documented switches): our Learner does none of these by default")
    return title, rows, notes
class PerItemDataset(torch.utils.data.Dataset):
    "The per-item way: item `i` of uint8 images `x` as a float image normalized with `mean`, `std`, and its label"
    def __init__(self, x, y, mean, std): self.x, self.y, self.mean, self.std = x, y, mean, std
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return (self.x[i].float() / 255 - self.mean) / self.std, self.y[i]

@register_benchmark('loader')
def bench_loader(cfg):
    "One epoch of normalized float batches: chapter 02f's in-memory loader against `DataLoader` over a per-item `Dataset`"
    from .data import in_memory_dls
    n, bs = (1024, 128) if cfg.quick else (60_000, 128)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)
    ours = in_memory_dls(x, y, x[:bs], y[:bs], [str(i) for i in range(10)], bs=bs, seed=0).train
    mean, std = x.float().mean() / 255, x.float().std() / 255
    theirs = torch.utils.data.DataLoader(PerItemDataset(x, y, mean, std), batch_size=bs, shuffle=True)
    t = timed({'ours': lambda: [b for b in ours], 'theirs': lambda: [b for b in theirs]}, cfg)
    title = (f"one epoch of {n:,} MNIST-shaped uint8 images as normalized float batches of {bs}, shuffled: in_memory_dls' loader against "
             f"DataLoader over a per-item Dataset (no workers); median of {cfg.repeats()} interleaved")
    return title, [Row('seconds per epoch', t['ours'], t['theirs'], target=('<=', 0.1))], ["target ≤ 0.1: at least 10× as fast"]
def per_image_affine(x, generator=None):
    "The per-image way with our own warp: one random affine matrix and one `warp_affine` call per image of float batch `x`"
    from .data.augment import affine_matrices, warp_affine
    return torch.cat([warp_affine(im[None], affine_matrices(1, generator=generator)) for im in x])

def _torchvision_affine():
    "torchvision's `transforms.v2`: a random flip and a random affine (±10°, 10% shift, zoom 1 to 1.1) applied to one image at a time"
    from torchvision.transforms import v2
    tfm = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(1., 1.1))])
    return lambda x: torch.stack([tfm(im) for im in x])

@register_benchmark('augment')
def bench_augment(cfg):
    "Random flip, rotation, zoom and shift of a float batch: chapter 02e's `batch_augment` against per-image transforms"
    from .data.augment import batch_augment
    bs, px = (16, 32) if cfg.quick else (64, 128)
    x = torch.rand(bs, 3, px, px, generator=torch.Generator().manual_seed(0))
    fns = {'ours': lambda: batch_augment(x), 'loop': lambda: per_image_affine(x)}
    notes = []
    if has('torchvision'): fns['torchvision'] = partial(_torchvision_affine(), x)
    else: notes.append("torchvision is not installed here: its transforms.v2 row is measured in the reference environment")
    t = timed(fns, cfg, full=7)
    cases = {'loop': 'a per-image loop of our own warp', 'torchvision': "per-image torchvision transforms.v2"}
    rows = [Row(f'batch against {cases[k]}', t['ours'], t[k], target=('<=', 0.2)) for k in fns if k != 'ours']
    notes.append("target ≤ 0.2: at least 5× as fast")
    return f"affine augmentation of {bs} float images 3×{px}×{px}: one batched grid_sample against one image at a time; median of {cfg.repeats(7)} interleaved", rows, notes
@register_benchmark('mnist-99')
def bench_mnist99(cfg):
    "Our fastest MNIST recipe against the published '99% in one epoch' recipe, back to back per seed, at 1 and 2 threads (or `cfg.threads`)"
    from .data import MNIST_CLASSES, dataset_available, in_memory_dls, load_mnist
    from .metrics import accuracy
    from .recipes import build_learner, fit_run, normalized_mnist, resolve_run, train_published
    if not dataset_available('mnist', cfg.data_dir): return 'MNIST is not in the dataset cache here: skipped', [], []
    n_train, n_test = (1024, 256) if cfg.quick else (None, None)
    xtr, ytr, xte, yte = normalized_mnist(n_train, n_test, data_dir=cfg.data_dir)
    raw = load_mnist(cfg.data_dir)
    seeds = cfg.seeds[:1] if cfg.quick else cfg.seeds
    rows, opts = [], {} if cfg.precision is None else {'precision': cfg.precision}
    for threads in ([cfg.n_threads] if cfg.threads or cfg.quick else [1, 2]):
        res = []
        with num_threads(threads):
            for seed in seeds:
                torch.manual_seed(seed)
                t0 = time.perf_counter(); pub = train_published(xtr, ytr); pub_s = time.perf_counter() - t0
                with torch.no_grad(): pub_acc = accuracy(pub.eval()(xte), yte).item()
                run = resolve_run('fastest', threads=threads, seed=seed, device='cpu', data_dir=cfg.data_dir, **opts)
                data = in_memory_dls(raw[0][:n_train, None], raw[1][:n_train], raw[2][:n_test, None], raw[3][:n_test], MNIST_CLASSES,
                                     run.bs, seed=seed, source='MNIST')
                with quiet():
                    t0 = time.perf_counter(); learn = fit_run(build_learner(run, data), run); ours_s = time.perf_counter() - t0
                res.append((pub_s, pub_acc, ours_s, learn.recorder.history[-1]['accuracy']))
                rows += [Row(f'{threads} thread(s), seed {seed}: training time', ours_s, pub_s),
                         Row(f'{threads} thread(s), seed {seed}: test accuracy', res[-1][3], pub_acc, '%', points=True)]
        med = [statistics.median(r[i] for r in res) for i in range(4)]
        rows += [Row(f'{threads} thread(s): median training time', med[2], med[0], target=('<=', 0.5)),
                 Row(f'{threads} thread(s): seeds at ≥ 99.0% (published: {sum(r[1] >= 0.99 for r in res)})', sum(r[3] >= 0.99 for r in res),
                     unit=f'of {len(res)}')]
    title = (f"recipe 'fastest' (convnets train, {run.precision}) against the published one-epoch MNIST recipe, back to back per seed: "
             f"{len(xtr):,} training and {len(xte):,} test images, seeds {', '.join(map(str, seeds))}")
    return title, rows, ["target: a median time ratio ≤ 0.5 and every seed ≥ 99.0%; our time includes building the Learner and one validation pass"]
PEER_MODELS = {'se_resnet50': ('timm', 'seresnet50'), 'mobilenet_v1': ('timm', 'mobilenetv1_100')}

def peer_model(name):
    "The torchvision model of the same name, or timm's equivalent in `PEER_MODELS`, untrained; None where neither is installed or has it"
    lib, arch = PEER_MODELS.get(name, ('torchvision', name))
    if not has(lib): return None
    if lib == 'timm':
        import timm
        return timm.create_model(arch, pretrained=False)
    import torchvision
    return getattr(torchvision.models, arch)(weights=None) if arch in torchvision.models.list_models() else None

@register_benchmark('models')
def bench_models(cfg):
    "Per-model CPU latency at batch 1 and 32 of every registered model, against torchvision's or timm's where installed"
    names = ['mnist_cnn', 'resnet18', 'mobilenet_v2'] if cfg.quick else models.names()
    batches = (1, 4) if cfg.quick else (1, 32)
    rows, missing = [], []
    for name in names:
        size = models.info(name).input_size
        if cfg.quick: size = (size[0], *(min(s, 64) for s in size[1:]))
        ours, theirs = models.create(name), peer_model(name)
        if theirs is None: missing.append(name)
        for bs in batches:
            x = torch.randn(bs, *size)
            with quiet(): t = latency({'ours': ours, **({'theirs': theirs} if theirs is not None else {})}, x, cfg.repeats(), cfg.n_threads)
            rows.append(Row(f"{name}, batch {bs}, {'×'.join(map(str, size))}", t['ours'], t.get('theirs'), target=('<=', 1.05)))
    notes = [f"no torchvision/timm model to compare here for: {', '.join(missing)}"] if missing else []
    return f"forward latency in eval mode without autograd, float32; median of {cfg.repeats()} interleaved", rows, notes
@contextlib.contextmanager
def numpy_threads(n):
    "Run the block with numpy's bundled OpenBLAS on `n` threads (left as it is where that library is not found)"
    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(np.__file__)), 'numpy.libs', '*openblas*'))
    lib = ctypes.CDLL(libs[0]) if libs else None
    get, set_ = (getattr(lib, f'scipy_openblas_{op}_num_threads64_', None) for op in ('get', 'set')) if lib else (None, None)
    if get is None or set_ is None: yield; return
    old = get(); set_(n)
    try: yield
    finally: set_(old)

def mlp_loss(p, x, y):
    "Cross-entropy of a ReLU MLP with weights `p` (`w0`, `b0`, ...), on the engine's values or on torch tensors alike"
    from . import autodiff as ad
    engine = isinstance(p['w0'], ad.Var)
    for i in range(len(p) // 2):
        x = x @ p[f'w{i}'] + p[f'b{i}']
        if i < len(p) // 2 - 1: x = ad.relu(x) if engine else torch.relu(x)
    return ad.cross_entropy(x, y) if engine else F.cross_entropy(x, y)

@register_benchmark('autodiff')
def bench_autodiff(cfg):
    "One SGD step of an MLP (forward, backward, update): chapter 01's engine on numpy against torch autograd, float32"
    from . import autodiff as ad
    sizes, bs, lr = ((784, 64, 10), 32, 0.1) if cfg.quick else ((784, 512, 512, 10), 128, 0.1)
    r = np.random.default_rng(0)
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        p[f'w{i}'], p[f'b{i}'] = (r.uniform(-1, 1, (a, b)) / np.sqrt(a)).astype(np.float32), np.zeros(b, np.float32)
    x, y = r.standard_normal((bs, 784)).astype(np.float32), r.integers(0, 10, bs)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    vg = ad.value_and_grad(mlp_loss)
    def engine_step():
        _, g = vg(p, x, y)
        for k in p: p[k] -= lr * g[k]
    def torch_step():
        gs = torch.autograd.grad(mlp_loss(tp, tx, ty), list(tp.values()))
        with torch.no_grad():
            for t, g in zip(tp.values(), gs): t -= lr * g
    with numpy_threads(cfg.n_threads): t = timed({'ours': engine_step, 'theirs': torch_step}, cfg, full=15)
    title = f"one SGD step of a {'-'.join(map(str, sizes))} ReLU MLP on a batch of {bs}, float32; median of {cfg.repeats(15)} interleaved"
    return title, [Row('step: our engine against torch autograd', t['ours'], t['theirs'], target=('<=', 1.2))], \
           [f"numpy's BLAS and PyTorch both on {cfg.n_threads} thread(s)"]
@register_benchmark('quant')
def bench_quant(cfg):
    "int8 resnet18 through torchao's PT2E against float32, both compiled for the CPU the same way: latency, program size, agreement"
    from . import deploy
    if not has('torchao'): return f"int8 needs torchao: {deploy.QUANT_HINT}", [], []
    arch, (c, px), bs = ('mnist_cnn', (1, 28), 4) if cfg.quick else ('resnet18', (3, 224), 8)
    torch.manual_seed(0)
    model = models.create(arch).eval()
    calib, x = [torch.randn(bs, c, px, px) for _ in range(2)], torch.randn(bs, c, px, px)
    with quiet():
        int8 = deploy.quantize_int8(model, calib)
        fp32_run, int8_run = (model, int8) if cfg.quick else (deploy.compile_for_cpu(model, x), deploy.compile_for_cpu(int8, x))
        with torch.no_grad(): t = timed({'ours': partial(int8_run, x), 'theirs': partial(fp32_run, x)}, cfg)
        with tempfile.TemporaryDirectory() as d:
            size = {k: deploy.file_size(deploy.save_program(m, Path(d)/f'{k}.pt2', example=x)) / 1e6 for k, m in (('int8', int8), ('fp32', model))}
        with torch.no_grad(): agree = (int8(x).argmax(1) == model(x).argmax(1)).float().mean().item()
    rows = [Row(f'latency, batch {bs}, {c}×{px}×{px}', t['ours'], t['theirs'], target=('<=', 0.67)),
            Row('saved program size', size['int8'], size['fp32'], 'MB', target=('<=', 0.27)),
            Row('top-1 agreement with float32 (random inputs)', agree, 1., '%', points=True)]
    how = 'both eager (quick: no compilation)' if cfg.quick else "both through compile_for_cpu (inductor, freezing)"
    return (f"int8 {arch}{' (quick: the small CNN)' if cfg.quick else ''} against float32, {how}; median of {cfg.repeats()} interleaved", rows,
            ["target: latency ≤ 0.67 (1.5× as fast) and size ≤ 0.27; untrained weights: the accuracy target (≤ 1 point) is measured on a trained network in chapter 08b, not here"])
def _xla_loop(model, x, y, bs, lr, device):
    "torch_xla's MNIST example loop: `MpDeviceLoader` over a `DataLoader`, SGD, one `torch_xla.sync()` per step"
    import torch_xla
    from torch_xla.distributed.parallel_loader import MpDeviceLoader
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=bs, shuffle=True, drop_last=True)
    def epoch():
        model.train()
        for xb, yb in MpDeviceLoader(loader, device):
            F.cross_entropy(model(xb), yb).backward(); opt.step(); opt.zero_grad(); torch_xla.sync()
        torch_xla.sync(wait=True)
    return epoch

@register_benchmark('xla')
def bench_xla(cfg):
    "Training images/s on torch_xla's device (PJRT; CPU here): `Learner` with chapter 09a's callbacks against torch_xla's own loop shape"
    if not has('torch_xla') or 'PJRT_DEVICE' not in os.environ:
        return "needs torch_xla and PJRT_DEVICE (PJRT_DEVICE=CPU on a CPU): pip install 'convnets[xla]'", [], []
    from .accel import xla_callbacks, xla_device
    from .data.loaders import DataLoaders, InMemoryLoader
    from .learner import Learner
    device, (n, bs, lr) = xla_device(), ((256, 32, 0.05) if cfg.quick else (6_400, 64, 0.05))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    torch.manual_seed(0)
    net = models.create('mnist_cnn')
    dls = DataLoaders(InMemoryLoader(x, y, bs, shuffle=True, drop_last=True, seed=0), InMemoryLoader(x[:bs], y[:bs], bs))
    learn = Learner(copy.deepcopy(net), dls, opt_func=partial(torch.optim.SGD, momentum=0.9), lr=lr, cbs=xla_callbacks())
    fns = {'ours': lambda: learn.fit(1), 'theirs': _xla_loop(copy.deepcopy(net), x, y, bs, lr, device)}
    t = timed(fns, cfg)
    compiles = learn.xla_cb.epochs[-1]['compiles']
    rows = [Row('training images/s', n / t['ours'], n / t['theirs'], 'img/s', target=('>=', 0.95)),
            Row('compilations in the last epoch (ours)', compiles, unit='')]
    return (f"mnist_cnn on {device}, {n:,} random images, batch {bs}, SGD; one epoch per run after a warm-up epoch, median of {cfg.repeats()} "
            "interleaved", rows, ["our epoch also validates one batch; target: ≥ 0.95 of the loop's images/s and 0 compilations after the first epoch"])
DDP_SCRIPT = '''
import json, os, sys, time, torch
from convnets import models
from convnets.data import in_memory_dls
from convnets.learner import Learner
import convnets.distributed
n, bs, threads = map(int, sys.argv[1:4])
torch.set_num_threads(threads); torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
x, y = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)
dls = in_memory_dls(x, y, x[:256], y[:256], [str(i) for i in range(10)], bs=bs, seed=0)
learn = Learner(models.create('mnist_cnn'), dls, opt_func=torch.optim.SGD, lr=0.05)
with learn.distributed():
    learn.fit(1)
    t0 = time.perf_counter(); learn.fit(1); seconds = time.perf_counter() - t0
if int(os.environ.get('RANK', 0)) == 0: print(json.dumps({'seconds': seconds}))
'''

def _ddp_run(script, nproc, n, bs, threads):
    "Seconds of one timed epoch of `script` in `nproc` processes (1: a plain process; else torchrun with gloo)"
    launch = [sys.executable] + (['-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}'] if nproc > 1 else [])
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    r = subprocess.run([*launch, str(script), str(n), str(bs), str(threads)], capture_output=True, text=True, env=env, timeout=900)
    if r.returncode: raise RuntimeError(f"the {nproc}-process run failed: {r.stderr.strip()[-1500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])['seconds']

@register_benchmark('ddp')
def bench_ddp(cfg):
    "Training images/s of 2 data-parallel processes (torchrun, gloo) against 1 process, on the same cores, runs interleaved"
    n, bs = (512, 64) if cfg.quick else (12_800, 64)
    each = max(1, cfg.n_threads // 2)
    times = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as d:
        (script := Path(d)/'ddp_epoch.py').write_text(DDP_SCRIPT)
        for _ in range(1 if cfg.quick else 3):
            for k in times: times[k].append(_ddp_run(script, k, n, bs, cfg.n_threads if k == 1 else each))
    ips = {k: n / statistics.median(v) for k, v in times.items()}
    eff = ips[2] / ips[1] / 2
    return (f"mnist_cnn, one epoch of {n:,} images after a warm-up epoch, batch {bs} per process: 2 processes of {each} thread(s) "
            f"against 1 process of {cfg.n_threads}; median of {len(times[1])} interleaved",
            [Row('training images/s: 2 processes against 1', ips[2], ips[1], 'img/s')],
            [f"parallel efficiency {eff:.0%} of the ideal 2× (the ratio over 2)"])
