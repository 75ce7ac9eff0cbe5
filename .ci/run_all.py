#!/usr/bin/env python
"""Run notebooks as Jupyter's "Run All" does, under the book's quick switch (CONVNETS_QUICK=1), and report each.

usage: python .ci/run_all.py [NB.ipynb ...] [--jobs 2]

Every code cell runs with its `#|` lines intact (nbdev_test strips them before running), so the switch that
`%load_ext convnets.machine` registers sees each cell's flags: `#| slow` cells print a note instead of training, and `#| ref`,
`#| xla`, `#| gpu` cells print one when their requirement is missing. The cells that remain are the ones `nbdev_test` runs (with
`--flags ddp`), so this is the notebook test suite and the proof that each notebook runs top to bottom on a laptop.
Each notebook runs in its own process, `--jobs` at a time; nothing is written back. Last line: "N passed, N failed".
"""
import argparse, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

def run_one(path):
    "Run every code cell of the notebook at `path` in one CaptureShell; exit status 1 with the traceback on the first error"
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    path = Path(path).resolve()
    nb = read_nb(path)
    os.chdir(path.parent)
    sh = CaptureShell(path)
    try: sh.run_all(nb, exc_stop=True, preproc=lambda c: c.cell_type != 'code' or 'nbdev_export' + '(' in c.source)
    except Exception:
        sys.stderr.write(sh.prettytb(fname=path) + '\n'); sys.exit(1)
    skipped = sum(any('skipped: ' in ''.join(o.get('text', '')) for o in c.get('outputs', [])) for c in nb.cells)
    print(f'{skipped} cells skipped')

def run(path):
    t0 = time.time()
    p = subprocess.run([sys.executable, __file__, '--one', str(path)], capture_output=True, text=True,
                       env={**os.environ, 'CONVNETS_QUICK': '1'})
    return path, p.returncode == 0, time.time() - t0, p.stdout.strip().splitlines()[-1:] , p.stderr

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('nbs', nargs='*')
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--one', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one: run_one(a.one); sys.exit(0)
    nbs = a.nbs or sorted(str(p) for p in Path('nbs').glob('*.ipynb') if not p.name.startswith('_'))
    failed = []
    with ThreadPoolExecutor(a.jobs) as ex:
        for path, ok, secs, last, err in ex.map(run, nbs):
            print(f"{'ok  ' if ok else 'FAIL'} {secs:6.1f} s  {Path(path).name}  {' '.join(last)}", flush=True)
            if not ok: failed.append(path); sys.stderr.write(f'--- {path}\n{err[-6000:]}\n')
    print(f'{len(nbs) - len(failed)} passed, {len(failed)} failed')
    sys.exit(1 if failed else 0)
