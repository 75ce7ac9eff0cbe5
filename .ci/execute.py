#!/usr/bin/env python
"""Re-execute notebooks in place, the way `nbdev_test` runs them, and keep the outputs.

usage: python .ci/execute.py NB.ipynb [NB.ipynb ...] [--flags slow ref ...]

Runs every code cell that `nbdev_test` runs (no `#| slow`, `#| ref`, ... flag unless named in --flags) in one kernel
(execnb's CaptureShell), in the notebook's folder, and writes the new outputs back; flagged cells that are not run keep
their committed outputs. Stops at the first error and writes nothing for that notebook. Run `nbdev_clean` afterwards.
"""
import argparse, os, sys, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from convnets.machine import cell_flags   # the book's one reader of a cell's `#|` flags (chapter 00b)

FLAGS = ('slow', 'xla', 'ddp', 'gpu', 'ref')

def execute(path, run_flags=()):
    path = Path(path).resolve()
    nb = read_nb(path)
    skip = set(FLAGS) - set(run_flags)
    def no_eval(cell):
        if cell.cell_type != 'code': return True
        if 'nbdev_export' + '(' in cell.source: return True
        return bool(cell_flags(cell.source) & skip) or '#| eval: false' in cell.source
    for cell in nb.cells:   # execnb leaves a cell's old outputs when the new run prints nothing
        if not no_eval(cell): cell.outputs = []
    t0, cwd = time.time(), os.getcwd()
    os.chdir(path.parent)
    try:
        sh = CaptureShell(path)
        sh.run_all(nb, exc_stop=True, preproc=no_eval)
    except Exception:
        sys.stderr.write(sh.prettytb(fname=path) + '\n')
        return False
    finally: os.chdir(cwd)
    write_nb(nb, path)
    print(f'{path.name}: executed in {time.time() - t0:.0f} s', flush=True)
    return True

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('nbs', nargs='+')
    p.add_argument('--flags', nargs='*', default=[], choices=FLAGS)
    a = p.parse_args()
    ok = [execute(nb, a.flags) for nb in a.nbs]
    sys.exit(0 if all(ok) else 1)
