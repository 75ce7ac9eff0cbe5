"""Build the docs without Quarto: `python .ci/docs.py readme` writes README.md from nbs/index.ipynb,
`python .ci/docs.py site` renders every notebook to HTML in docs/ and checks the result."""
import html, re, sys, importlib
from pathlib import Path

import nbformat, yaml
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from nbdev.config import get_config
from nbdev.doclinks import _build_modidx
from nbdev.quarto import nbdev_sidebar
from nbdev.serve import proc_nbs
from nbdev.serve_drv import main as proc_one
from nbdev.processors import FilterDefaults

cfg = get_config()
ROOT, NBS, DOCS = cfg.config_path, cfg.nbs_path, cfg.config_path/cfg.doc_path
SITE_URL = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/')


def frontmatter_to_md(nb):
    "Turn the YAML front-matter raw cell nbdev's processors make into a markdown title and summary."
    for cell in nb.cells:
        if cell.cell_type == 'raw' and cell.source.startswith('---'):
            meta = yaml.safe_load(cell.source.strip().strip('-')) or {}
            title, desc = meta.get('title', ''), meta.get('description', '')
            cell.cell_type, cell.source = 'markdown', f"# {title}\n\n> {desc}" if desc else f"# {title}"
            cell.pop('attachments', None)
    return nb


def quarto_like(nb):
    "Do what Quarto would: honour `#| echo: false`, drop `#|` directive lines and Quarto-only link attributes."
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        lines = cell.source.splitlines()
        if any(re.match(r'#\|\s*echo:\s*false', l) for l in lines):
            cell.metadata.setdefault('tags', []).append('remove_input')
        cell.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        for o in cell.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if md: o['data']['text/markdown'] = re.sub(r'\{target="_blank"[^}]*\}', '', ''.join(md))
    nb.cells = [c for c in nb.cells if c.cell_type != 'code' or c.source or c.get('outputs')]
    return nb


def page_name(stem):
    "The page nbdev and Quarto render a notebook to: `05b_learner` -> `learner.html`."
    return re.sub(r'^\d+[a-z]?_', '', stem) + '.html'


def rewrite_links(text, target):
    "Point links to sibling notebooks at their rendered page (`target` is 'html' or 'site')."
    def repl(m):
        page = page_name(m.group(1))
        return f"]({page})" if target == 'html' else f"]({SITE_URL}/{page})"
    return re.sub(r"\]\(([\w\-]+)\.ipynb\)", repl, text)


def process(nb_path, out_dir):
    "Run nbdev's doc processors on one notebook (show_doc entries, hidden cells removed)."
    dst = out_dir/nb_path.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc_one((nb_path, dst, FilterDefaults))
    return dst


def build_readme():
    "Write README.md from the processed index notebook."
    out = ROOT/'_proc_readme'
    dst = process(NBS/cfg.readme_nb, out)
    nb = quarto_like(frontmatter_to_md(nbformat.read(dst, as_version=4)))
    md, _ = MarkdownExporter().from_notebook_node(nb)
    md = re.sub(r'<style>.*?</style>', '', rewrite_links(md, 'site'), flags=re.S)
    md = re.sub(r'\n{3,}', '\n\n', md).strip() + '\n'
    (ROOT/'README.md').write_text(md)
    for f in out.iterdir(): f.unlink()
    out.rmdir()
    print("README.md written from", cfg.readme_nb)


def error_outputs(nb):
    "Names of errors saved in a notebook's outputs."
    return [o.get('ename', 'error') for c in nb.cells if c.cell_type == 'code'
            for o in c.get('outputs', []) if o.get('output_type') == 'error']


def documented_names(nb):
    "Names that have a `show_doc` entry or a markdown mention in a processed notebook."
    names = set()
    for c in nb.cells:
        texts = [c.source] if c.cell_type == 'markdown' else [
            o.get('data', {}).get('text/markdown', '') for o in c.get('outputs', [])]
        for t in texts:
            t = ''.join(t) if isinstance(t, list) else t
            names.update(re.findall(r'^#+\s+(?:\[)?([\w.]+)', t, re.M))
            names.update(n for n in re.findall(r'`([\w.]+)`', t))
    return names


def undocumented_symbols(proc_nbs_):
    "Exported public names that have no documentation entry anywhere in the processed notebooks."
    doc = set().union(*(documented_names(nb) for nb in proc_nbs_.values()))
    shown = {n.split('.')[-1] for n in doc} | doc
    missing = []
    for mod_file in sorted((ROOT/cfg.lib_path).glob('*.py')):
        if mod_file.name.startswith('_') or mod_file.stem == 'all': continue  # `all` only gathers the chapters' exports
        mod = importlib.import_module(f"{cfg.lib_name}.{mod_file.stem}")
        for name in getattr(mod, '__all__', []):
            if name.startswith('_'): continue
            if name not in shown: missing.append(f"{mod_file.stem}.{name}")
            obj = getattr(mod, name)
            if callable(obj) and getattr(obj, '__module__', None) == mod.__name__ and not (obj.__doc__ or '').strip():
                missing.append(f"{mod_file.stem}.{name} (no docstring)")
    return missing


NAV_CSS = """<style>
.cn-nav{position:fixed;top:0;left:0;width:210px;height:100%;overflow:auto;padding:1rem;background:#f7f7f9;border-right:1px solid #ddd;font:14px sans-serif}
.cn-nav a{display:block;padding:2px 0;color:#2a6ebb;text-decoration:none}.cn-nav a.cur{font-weight:bold;color:#000}
body{margin-left:230px !important}
</style>"""


def page_title(nb, default):
    "The notebook's `# Title`, for the sidebar."
    heads = [c.source[2:].split('\n')[0] for c in nb.cells if c.cell_type == 'markdown' and c.source.startswith('# ')]
    return f"{default.split('_')[0]} {heads[0]}" if heads and default != 'index' else (heads[0] if heads else default)


def nav_html(pages, current):
    "A sidebar linking every page of the site."
    links = ''.join(f'<a class="{"cur" if p == current else ""}" href="{page_name(p)}">{html.escape(t)}</a>'
                    for p, t in pages)
    return f'{NAV_CSS}<nav class="cn-nav"><b>convnets</b>{links}</nav>'


def build_site():
    "Render every notebook to docs/*.html with nbdev's processors and nbconvert; fail on any problem."
    problems = []
    for nb_path in sorted(NBS.glob('*.ipynb')):
        errs = error_outputs(nbformat.read(nb_path, as_version=4))
        if errs: problems.append(f"{nb_path.name}: saved error output(s): {', '.join(errs)}")
    _build_modidx()
    nbdev_sidebar.__wrapped__(path=NBS, force=True)
    cache = proc_nbs(NBS, force=True)
    processed = {p.stem: frontmatter_to_md(nbformat.read(p, as_version=4)) for p in sorted(cache.glob('*.ipynb'))}
    pages = [(stem, page_title(nb, stem)) for stem, nb in processed.items()]
    pages.sort(key=lambda p: (p[0] != 'index', p[0]))
    DOCS.mkdir(exist_ok=True)
    exporter = HTMLExporter(exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
    for stem, nb in processed.items():
        errs = error_outputs(nb)
        if errs: problems.append(f"{stem}: error output(s) while rendering docs: {', '.join(errs)}")
        try: body, _ = exporter.from_notebook_node(quarto_like(nb))
        except Exception as e:
            problems.append(f"{stem}: render failed: {type(e).__name__}: {e}")
            continue
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav_html(pages, stem), rewrite_links(body, 'html'), count=1)
        (DOCS/page_name(stem)).write_text(body)
    index_md = ''.join(c.source for c in processed.get('index', nbformat.v4.new_notebook()).cells if c.cell_type == 'markdown')
    problems += [f"the home page (index.ipynb) does not link {stem}.ipynb" for stem, _ in pages
                 if stem != 'index' and f"]({stem}.ipynb)" not in index_md]
    problems += [f"no documentation entry for exported symbol {s}" for s in undocumented_symbols(processed)]
    print(f"rendered {len(processed)} pages into {DOCS.relative_to(ROOT)}/")
    for p in problems: print("DOCS ERROR:", p)
    return not problems


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else 'site'
    if cmd == 'readme': build_readme()
    elif cmd == 'site': sys.exit(0 if build_site() else 1)
    else: sys.exit(f"usage: python .ci/docs.py [readme|site]")
