"""Build the docs without Quarto.

`python .ci/docs.py readme`            writes README.md from nbs/index.ipynb.
`python .ci/docs.py site`              renders every notebook to docs/*.html, typesets its math with KaTeX at build time,
                                       and checks the pages as a reader gets them (fails on any problem): links to missing
                                       pages, anchors or private names, API entries without a source link or shown twice,
                                       anything fetched from the network, noise in outputs (known stderr chatter, empty
                                       progress-bar remnants, nbdev imports in view), and, where headless Chromium is
                                       installed, code cut off at the right edge, the line length and the phone layout.
`python .ci/docs.py shots DIR [PAGE]`  screenshots the built pages at desktop (1366 px) and phone (390 px) widths with
                                       headless Chromium into DIR (not run in CI).

KaTeX comes from the npm registry (`npm pack katex@KATEX_VERSION`, checked against KATEX_SHA512) into a cache folder,
$CONVNETS_DOCS_CACHE or ~/.cache/convnets-docs, and runs under the machine's `node`; its CSS and fonts are copied into
docs/katex/, so the pages need no network."""
import ast, base64, functools, hashlib, html, inspect, json, multiprocessing, multiprocessing.pool, os, re, shutil, subprocess, sys, importlib, tarfile, tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2, nbformat, yaml
from nbconvert import HTMLExporter, MarkdownExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import TagRemovePreprocessor
from nbdev.config import get_config
from nbdev.doclinks import _build_modidx, _get_modidx, _nbpath2html
from nbdev.serve_drv import main as proc_one
from nbdev.processors import FilterDefaults
import nbdev.processors
from fastcore.docments import ShowDocRenderer, _fmt_sig, _show_param, qual_name

cfg = get_config()
ROOT, NBS, DOCS = cfg.config_path, cfg.nbs_path, cfg.config_path/cfg.doc_path
SITE_URL = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/')
sys.path.insert(0, str(ROOT))  # document the library of this tree, not whichever copy is installed

_TEST_FLAGS = set(cfg.tst_flags.split())
_nbdev_do_eval = nbdev.processors._do_eval

def _do_eval(cell):
    "nbdev's rule for the cells the doc build runs (exports, imports, show_doc), minus cells with a test flag: they need the reference env, torchrun, a GPU or hours"
    if cell.cell_type == 'code' and set(cell.directives_) & _TEST_FLAGS: return None
    return _nbdev_do_eval(cell)

nbdev.processors._do_eval = _do_eval   # the show_doc processor looks it up in its module on every cell

_nbdev_def_names = nbdev.processors._def_names

def _def_names(cell, shown):
    "nbdev's names for automatic show_doc cells, minus a patched method the notebook shows itself: nbdev compares only the bare name (`distributed`), so `show_doc(Learner.distributed)` rendered twice"
    return [n for n in _nbdev_def_names(cell, shown) if n not in shown]

nbdev.processors._def_names = _def_names

_show_doc_init = ShowDocRenderer.__init__

def _show_doc_renderer_init(self, sym, name=None, title_level=3, maxline=110):
    "show_doc's renderer, with a decorated `@patch` method under its class's name and a NamedTuple's fields as its signature"
    _show_doc_init(self, sym, name=name, title_level=title_level, maxline=maxline)
    outer = getattr(sym, '__qualname__', '')
    if '.' in outer and qual_name(self.sym) != outer:  # `@patch @contextmanager`: unwrapping lost the class
        mod = getattr(sym, '__module__', None)
        self.nm, self.fn = name or outer, outer if mod in (None, '__main__', 'builtins') else f"{mod}.{outer}"
    if isinstance(sym, type) and issubclass(sym, tuple) and hasattr(sym, '_fields'):  # its `__init__` is tuple's `(*args, **kwargs)`
        params = [(_show_param(p), '') for p in inspect.signature(sym).parameters.values()]
        self.dm = _fmt_sig(sym.__name__, params, '):', maxline, prefix='class')

ShowDocRenderer.__init__ = _show_doc_renderer_init

KATEX_VERSION = '0.19.1'
KATEX_SHA512 = 'jG8uKntjSEcm2EpQOh0XturpPuuC9r3Sq5HLHdsFdWZT27E672SF19QEi+of0/YeOy15lDgRhKvr5614uRrEfA=='
CACHE = Path(os.environ.get('CONVNETS_DOCS_CACHE') or Path.home()/'.cache'/'convnets-docs')


# ---------------------------------------------------------------- notebooks -> pages

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
            data = o.get('data', {})
            if 'text/latex' in data and not {'text/html', 'text/markdown'} & set(data):
                data['text/markdown'] = data.pop('text/latex')  # typeset like markdown math (sympy's output)
            md = data.get('text/markdown')
            if md: data['text/markdown'] = re.sub(r'\{target="_blank"[^}]*\}', '', ''.join(md))
    nb.cells = [c for c in nb.cells if c.cell_type != 'code' or c.source or c.get('outputs')]
    nb.metadata.pop('widgets', None)  # executing adds an empty widget state; nbconvert would then load a widget manager from a CDN
    return nb


def page_name(stem):
    "The page nbdev and Quarto render a notebook to: `05b_learner` -> `learner.html` (nbdev's own rule)."
    return _nbpath2html(Path(stem + '.ipynb')).name


def notebook_stems():
    "The notebooks the site is made of."
    return sorted(p.stem for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))


def rewrite_readme_links(text):
    "Point README links to sibling notebooks (`.ipynb` or notebook-named `.html`) at their page on the published site."
    stems = set(notebook_stems())
    def repl(m): return f"]({SITE_URL}/{page_name(m.group(1))}{m.group(3) or ''})" if m.group(1) in stems else m.group(0)
    return re.sub(r"\]\(([\w\-]+)\.(ipynb|html)(#[^)]*)?\)", repl, text)


def process(nb_path, out_dir):
    "Run nbdev's doc processors on one notebook (show_doc entries, doc links, hidden cells removed)."
    dst = out_dir/nb_path.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc_one((nb_path, dst, FilterDefaults))
    return dst


def build_readme():
    "Write README.md from the processed index notebook."
    out = ROOT/'_proc_readme'
    index_package_inits()
    index_assigned_functions()
    public_symbol_index()
    global CURRENT_PAGE
    CURRENT_PAGE = page_name(cfg.readme_nb.removesuffix('.ipynb'))
    dst = process(NBS/cfg.readme_nb, out)
    nb = quarto_like(frontmatter_to_md(nbformat.read(dst, as_version=4)))
    md, _ = MarkdownExporter().from_notebook_node(nb)
    md = re.sub(r'<style>.*?</style>', '', rewrite_readme_links(md), flags=re.S)
    md = re.sub(r'\n{3,}', '\n\n', md).strip() + '\n'
    (ROOT/'README.md').write_text(md)
    for f in out.iterdir(): f.unlink()
    out.rmdir()
    print("README.md written from", cfg.readme_nb)


def index_package_inits():
    "nbdev's symbol index skips `__init__.py`: add exported packages (`convnets.models`) so doc links find their names."
    modidx = importlib.import_module(f"{cfg.lib_name}._modidx")
    lib = (ROOT/cfg.lib_path).resolve()
    for init in sorted(lib.rglob('__init__.py')):
        if init.parent == lib: continue
        try: found = _get_modidx(init, lib.parent, NBS.resolve())
        except ValueError: continue  # not exported from a notebook
        for mod, syms in found.items():
            pkg = mod.removesuffix('.__init__')
            modidx.d['syms'][pkg] = {pkg + k[len(mod):]: v for k, v in syms.items()}


def assigned_names(path):
    "Module-level names bound by assignment in a Python file (`mnist_cnn = book_cnn(...)`), with their line numbers."
    found = {}
    for node in ast.parse(Path(path).read_text(encoding='utf-8')).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for tgt in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for n in (tgt.elts if isinstance(tgt, ast.Tuple) else [tgt]):
                    if isinstance(n, ast.Name): found.setdefault(n.id, node.lineno)
    return found


_nbdev_get_exps = nbdev.doclinks._get_exps

@functools.lru_cache(None)
def _get_exps(mod):
    "nbdev's line numbers of a module's definitions, plus its functions and classes made by assignment"
    found = dict(_nbdev_get_exps(mod))
    path = nbdev.doclinks._find_mod(mod)
    if path and path.exists(): found = {**assigned_names(path), **found}
    return found

nbdev.doclinks._get_exps = _get_exps


def index_assigned_functions():
    "nbdev indexes only `def` and `class`: add the exported functions and classes a module makes by assignment (`mnist_cnn = book_cnn(...)`, not aliases), so they get doc links and source links."
    syms = importlib.import_module(f"{cfg.lib_name}._modidx").d['syms']
    for _, mod_name in library_modules():
        mod = importlib.import_module(mod_name)
        path = Path(mod.__file__)
        lines = path.read_text(encoding='utf-8').splitlines()
        for name, lineno in assigned_names(path).items():
            obj = getattr(mod, name, None)
            if name.startswith('_') or name not in getattr(mod, '__all__', []) or getattr(obj, '__name__', None) != name: continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)): continue
            stem = next((m.group(1) for l in reversed(lines[:lineno]) if (m := re.match(r'# %% \S*?([^/\s]+)\.ipynb', l))), None)
            nb = NBS/f"{stem}.ipynb"
            if stem and nb.exists() and re.search(rf'show_doc\(\s*{name}\b', nb.read_text(encoding='utf-8')):  # it has an entry to link to
                syms.setdefault(mod_name, {})[f"{mod_name}.{name}"] = (
                    f"{page_name(stem)}#{name.lower()}", path.resolve().relative_to(ROOT.resolve()).as_posix())


def public_symbol_index():
    "Keep only public names in the symbol index doc links come from: `_one_batch` or `Learner._restore_fit` has no entry to land on (nbdev linked `_one_batch` to another module's helper)."
    syms = importlib.import_module(f"{cfg.lib_name}._modidx").d['syms']
    for mod, d in syms.items():
        syms[mod] = {k: v for k, v in d.items() if not any(p.startswith('_') for p in k[len(mod) + 1:].split('.'))}


_nbdev_lookup_table = nbdev.doclinks._build_lookup_table
CURRENT_PAGE = None  # the page being processed


def _lookup_table(*args, **kwargs):
    "nbdev's symbol table for doc links, where a bare name two modules define (`cross_entropy`, chapters 01 and 03) means this page's own entry, or is not linked (nbdev took the first module's)"
    entries, syms = _nbdev_lookup_table(*args, **kwargs)
    owners = {}
    for mod, d in importlib.import_module(f"{cfg.lib_name}._modidx").d['syms'].items():
        for k in d: owners.setdefault(k[len(mod) + 1:], []).append(k)
    syms = dict(syms)
    for bare, quals in owners.items():
        found = [syms[q] for q in quals if q in syms]
        if len({s[0].split('#')[0] for s in found}) < 2: continue
        own = [s for s in found if CURRENT_PAGE and s[0].split('#')[0].rsplit('/', 1)[-1] == CURRENT_PAGE]
        if own: syms[bare] = own[0]
        else: syms.pop(bare, None)
    return entries, syms


nbdev.doclinks._build_lookup_table = _lookup_table


def process_one(item):
    "nbdev's doc processors on one notebook: None, or the error that stopped them."
    global CURRENT_PAGE
    CURRENT_PAGE = page_name(item[0].stem)
    try: proc_one(item)
    except Exception as e: return f"{item[0].name}: nbdev's doc processors failed: {str(e).splitlines()[0]} ({e.__cause__!r})"


def process_all():
    "Run nbdev's doc processors on every notebook into _proc/ (forked workers share the symbol index built here)."
    out = ROOT/'_proc'
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    items = [(NBS/f"{s}.ipynb", out/f"{s}.ipynb", FilterDefaults) for s in notebook_stems()]
    if 'fork' in multiprocessing.get_all_start_methods():
        import torch, matplotlib.pyplot  # imported once, before the workers fork
        # one notebook per worker: running a notebook replaces the worker's `__main__` (IPython's shell does)
        with multiprocessing.get_context('fork').Pool(min(2, os.cpu_count() or 1), maxtasksperchild=1) as pool:
            errors = pool.map(process_one, items, chunksize=1)
    else: errors = [process_one(o) for o in items]
    return out, [e for e in errors if e]


# ---------------------------------------------------------------- math: KaTeX at build time

def katex_package():
    "KaTeX's npm package, fetched once with `npm pack` (pinned version and checksum) and unpacked into the cache."
    dest = CACHE/f'katex-{KATEX_VERSION}'
    if (dest/'package'/'dist'/'katex.js').exists(): return dest/'package'
    CACHE.mkdir(parents=True, exist_ok=True)
    tgz = CACHE/f'katex-{KATEX_VERSION}.tgz'
    if not tgz.exists():
        if not shutil.which('npm'): sys.exit("DOCS ERROR: typesetting the math needs KaTeX: install Node.js and npm")
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            r = subprocess.run(['npm', 'pack', f'katex@{KATEX_VERSION}', '--pack-destination', tmp, '--silent'],
                               capture_output=True, text=True)
            got = Path(tmp)/tgz.name
            if r.returncode or not got.exists():
                sys.exit(f"DOCS ERROR: `npm pack katex@{KATEX_VERSION}` failed: {(r.stderr or r.stdout).strip()[-500:]}")
            got.replace(tgz)
    digest = base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    if digest != KATEX_SHA512:
        tgz.unlink()
        sys.exit(f"DOCS ERROR: {tgz.name} does not match its pinned sha512 checksum (removed; run again)")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        with tarfile.open(tgz) as tf:
            try: tf.extractall(Path(tmp)/'x', filter='data')
            except TypeError: tf.extractall(Path(tmp)/'x')  # Python < 3.10.12: no filters (the checksum matched)
        shutil.rmtree(dest, ignore_errors=True)
        try: (Path(tmp)/'x').rename(dest)
        except OSError:  # another build unpacked it meanwhile
            if not (dest/'package'/'dist'/'katex.js').exists(): raise
    return dest/'package'


KATEX_JS = r"""
const katex = require(process.argv[1]);
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  const out = JSON.parse(input).map(([tex, display]) => {
    const warnings = [];
    const strict = (code, msg) => { warnings.push(msg); return 'ignore'; };
    try { return {html: katex.renderToString(tex, {displayMode: display, throwOnError: true, strict}), warnings}; }
    catch (e) { return {error: String(e.message || e)}; }
  });
  process.stdout.write(JSON.stringify(out));
});
"""


def typeset(formulas):
    "Render (tex, display) pairs to HTML with KaTeX under node: a list of {'html'} or {'error'} dicts."
    if not formulas: return []
    if not shutil.which('node'): sys.exit("DOCS ERROR: typesetting the math needs Node.js (`node`) on the PATH")
    pkg = katex_package()
    r = subprocess.run(['node', '-e', KATEX_JS, str(pkg/'dist'/'katex.js')], input=json.dumps(formulas),
                       capture_output=True, text=True)
    if r.returncode: sys.exit(f"DOCS ERROR: KaTeX failed: {r.stderr.strip()[-1000:]}")
    return json.loads(r.stdout)


def copy_katex_assets():
    "Serve KaTeX's stylesheet, fonts and licence from docs/katex/."
    pkg, dst = katex_package(), DOCS/'katex'
    (dst/'fonts').mkdir(parents=True, exist_ok=True)
    shutil.copy(pkg/'dist'/'katex.min.css', dst/'katex.min.css')
    shutil.copy(pkg/'LICENSE', dst/'LICENSE')
    for f in (pkg/'dist'/'fonts').glob('*.woff2'): shutil.copy(f, dst/'fonts'/f.name)


MATH_MARK = re.compile('\ue000(\\d+)\ue001')


class MathRenderer(IPythonRenderer):
    "nbconvert's markdown renderer, leaving a numbered mark for each formula that KaTeX typesets later."
    def __init__(self, formulas, **kwargs):
        super().__init__(**kwargs)
        self.formulas = formulas

    def _mark(self, tex, display):
        self.formulas.append((tex, display))
        return f'\ue000{len(self.formulas) - 1}\ue001'

    def block_math(self, body): return self._mark(body, True)
    def inline_math(self, body): return self._mark(body, False)
    def latex_environment(self, name, body): return self._mark(f"\\begin{{{name}}}{body}\\end{{{name}}}", True)


PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}<link rel="stylesheet" href="katex/katex.min.css">{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_css -%}<link rel="stylesheet" href="site.css">{%- endblock html_head_css -%}
"""


class OfflineHTMLExporter(HTMLExporter):
    "nbconvert's lab HTML without CDN scripts; formulas are collected in `self.formulas` for KaTeX."
    def __init__(self, **kwargs):
        super().__init__(exclude_input_prompt=True, exclude_output_prompt=True, template_file='convnets_page.html.j2',
                         extra_loaders=[jinja2.DictLoader({'convnets_page.html.j2': PAGE_TEMPLATE})], **kwargs)
        self.register_preprocessor(TagRemovePreprocessor(remove_input_tags={'remove_input'}), enabled=True)
        self.formulas = []

    @jinja2.pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = MathRenderer(self.formulas, escape=False, attachments=cell.get("attachments", {}),
                                embed_images=self.embed_images,
                                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                                anchor_link_text=self.anchor_link_text,
                                exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
        return MarkdownWithMath(renderer=renderer).render(source)


# ---------------------------------------------------------------- page post-processing

def heading_ids(body, formulas):
    "Give headings Quarto's (pandoc's) ids, so `page.html#learner.fit` links mean the same offline and published."
    seen = {}
    def text_of(inner):
        inner = re.sub(r'<a class="anchor-link".*?</a>', '', inner, flags=re.S)
        inner = MATH_MARK.sub(lambda m: formulas[int(m.group(1))][0], inner)
        return html.unescape(re.sub(r'<[^>]+>', '', inner))
    def repl(m):
        level, attrs, inner = m.group(1), m.group(2) or '', m.group(3)
        ident = re.sub(r'[^\w\s.-]', '', text_of(inner).lower()).strip()
        ident = re.sub(r'^[^a-z]+', '', re.sub(r'\s+', '-', ident)) or 'section'
        n = seen.get(ident, 0); seen[ident] = n + 1
        if n: ident = f"{ident}-{n}"
        attrs = re.sub(r'\s*id="[^"]*"', '', attrs)
        inner = re.sub(r'(<a class="anchor-link" href=")#[^"]*"', lambda a: f'{a.group(1)}#{ident}"', inner)
        return f'<h{level} id="{ident}"{attrs}>{inner}</h{level}>'
    return re.sub(r'<h([1-6])(\s[^>]*)?>(.*?)</h\1>', repl, body, flags=re.S)


def rewrite_link(url, stems):
    "A link to the published site, a notebook or a notebook-named page (`05a_optimizer.html`) as the page it means (`optimizer.html`)."
    if url.startswith(SITE_URL + '/'): url = url[len(SITE_URL) + 1:]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path: return url
    p = Path(unquote(parts.path))
    if p.suffix in ('.ipynb', '.html') and p.stem in stems and len(p.parts) == 1:
        url = page_name(p.stem) + (f"?{parts.query}" if parts.query else '') + (f"#{parts.fragment}" if parts.fragment else '')
    return url


def to_class_entries(body, heads):
    "Point a link to a method without an entry of its own (`speed.html#run.from_dict`) at its class's entry (`#run`)."
    def repl(m):
        page, cls, meth = m.group(2), m.group(3), m.group(4)
        target = heads.get(html.unescape(page))
        if target is None or f"{cls}.{meth}" in target or cls not in target: return m.group(0)
        return f'{m.group(1)}{page}#{cls}"'
    return re.sub(r'(href=")([\w.-]+\.html)#([a-z]\w*)\.(\w+)"', repl, body)


def rewrite_links(body, stems):
    "Apply `rewrite_link` to every href and src of a page."
    return re.sub(r'''\b(href|src)=(["'])(.*?)\2''',
                  lambda m: f'{m.group(1)}={m.group(2)}{html.escape(rewrite_link(html.unescape(m.group(3)), stems))}{m.group(2)}',
                  body)


SITE_CSS = """/* The offline site's layout on top of nbconvert's JupyterLab styles (written to docs/site.css by .ci/docs.py) */
body.jp-Notebook{margin:0;padding:0;overflow:visible;font-size:15px;line-height:1.55}
.cn-nav{position:fixed;top:0;left:0;bottom:0;width:250px;overflow:auto;padding:1rem .9rem 2rem;background:#f7f7f9;
  border-right:1px solid #ddd;font:14px/1.35 system-ui,sans-serif;box-sizing:border-box;z-index:10}
.cn-nav .cn-title{display:block;font-size:18px;font-weight:bold;margin-bottom:.6rem;color:#000}
.cn-nav a{display:block;padding:3px 0;color:#2a6ebb;text-decoration:none}.cn-nav a:hover{text-decoration:underline}
.cn-nav a.cur{font-weight:bold;color:#000}
.cn-nav code{font-size:13px}
.cn-toc{list-style:none;margin:.1rem 0 .5rem;padding:0 0 0 .7rem;border-left:2px solid #cdd}
.cn-toc li{margin:0}.cn-toc a{padding:2px 0;font-size:13px;color:#444}.cn-toc .cn-h3 a{padding-left:.8rem;color:#666}
.cn-menu,.cn-burger{display:none}
main{margin-left:250px;padding:1rem 2.5rem 2rem;max-width:64rem;box-sizing:border-box}
/* prose: a comfortable measure of about 80 characters; code and tables use the column's full width */
.jp-RenderedMarkdown p,.jp-RenderedMarkdown li,.jp-RenderedMarkdown blockquote,.jp-RenderedMarkdown h1,
.jp-RenderedMarkdown h2,.jp-RenderedMarkdown h3,.jp-RenderedMarkdown h4{max-width:36rem}
.jp-RenderedMarkdown table{display:block;overflow-x:auto;max-width:100%}
.jp-RenderedMarkdown pre{margin:.4em 0 1em;padding:.4em .6em;background:#f5f5f5}
/* code scrolls sideways instead of being cut off at the right edge */
.jp-InputArea,.jp-InputArea-editor,.jp-OutputArea-child,.jp-OutputArea-output dl{overflow:visible}
.jp-InputArea-editor{max-width:0}  /* a table cell as wide as its table, not as its longest line */
.jp-InputArea-editor .highlight,.jp-InputArea-editor pre,.jp-RenderedMarkdown pre,.jp-OutputArea-output pre{overflow-x:auto;max-width:100%}
.jp-RenderedMarkdown pre,.jp-OutputArea-output pre{white-space:pre;word-break:normal;overflow-wrap:normal}  /* a command or a printed table keeps its lines */
.jp-OutputArea-output p:has(> a:only-child[href*="/blob/"]){float:right;margin:0;font-size:smaller}  /* an API entry's source link */
.jp-OutputArea-output{overflow-x:auto}
.jp-OutputArea-output img{max-width:100%;height:auto}
.katex-display{overflow-x:auto;overflow-y:hidden}
.cn-pager{display:flex;justify-content:space-between;gap:1rem;margin:2.5rem 0 1rem;padding-top:1rem;border-top:1px solid #ddd;font:15px system-ui,sans-serif}
.cn-pager a{color:#2a6ebb;text-decoration:none;max-width:48%}.cn-pager .cn-next{margin-left:auto;text-align:right}
.cn-pager small{display:block;color:#777}
/* a phone or a narrow window: the chapters fold into a menu above the text */
@media (max-width:800px){
  .cn-burger{display:block;position:sticky;top:0;z-index:20;padding:.55rem 1rem;background:#f7f7f9;border-bottom:1px solid #ddd;
    font:15px system-ui,sans-serif;cursor:pointer}
  .cn-nav{display:none;top:2.5rem;width:85%;max-width:320px;box-shadow:2px 0 8px rgba(0,0,0,.15)}
  .cn-menu:checked ~ .cn-nav{display:block}
  main{margin-left:0;padding:.5rem .8rem 1.5rem}
  .jp-Cell{padding-left:0;padding-right:0}
}
"""


def page_toc(body):
    "The page's own sections: (level, id, html) of the h2 and h3 headings of its markdown cells (not the API entries)."
    toc, in_prose = [], False
    for m in re.finditer(r'<div class="jp-Cell (jp-\w+Cell)|<h([23]) id="([^"]*)"[^>]*>(.*?)</h\2>', body, re.S):
        if m.group(1): in_prose = m.group(1) == 'jp-MarkdownCell'
        elif in_prose:
            inner = re.sub(r'<a class="anchor-link".*?</a>|<a [^>]*>|</a>', '', m.group(4), flags=re.S)
            toc.append((int(m.group(2)), m.group(3), inner.strip()))
    return toc


def page_title(nb, stem):
    "The sidebar entry for a notebook: `04b Models`; the home page reads as `Home`."
    if stem == cfg.readme_nb.removesuffix('.ipynb'): return 'Home'
    heads = [c.source[2:].split('\n')[0] for c in nb.cells if c.cell_type == 'markdown' and c.source.startswith('# ')]
    return f"{stem.split('_')[0]} {heads[0]}" if heads else stem


def nav_html(pages, current, toc=()):
    "A menu toggle for narrow screens and a sidebar with the site's title, every page, and the current page's sections."
    def label(t): return re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(t))
    def toc_html():
        items = ''.join(f'<li class="cn-h{lvl}"><a href="#{html.escape(i)}">{inner}</a></li>' for lvl, i, inner in toc)
        return f'<ul class="cn-toc">{items}</ul>' if items else ''
    links = ''.join(f'<a class="cur" href="{page_name(p)}">{label(t)}</a>{toc_html()}' if p == current else
                    f'<a href="{page_name(p)}">{label(t)}</a>' for p, t in pages)
    return ('<input type="checkbox" id="cn-menu" class="cn-menu"><label for="cn-menu" class="cn-burger">&#9776; Chapters and sections</label>'
            f'<nav class="cn-nav"><a class="cn-title" href="index.html">{html.escape(cfg.title)}</a>{links}</nav>'
            # on a phone, following a link folds the menu away
            '<script>for (const a of document.querySelectorAll(".cn-nav a")) a.addEventListener("click", () => '
            'document.getElementById("cn-menu").checked = false);</script>')


def pager_html(pages, current):
    "Links to the previous and the next page, in the sidebar's order."
    stems = [p for p, _ in pages]
    i, titles = stems.index(current), dict(pages)
    def link(j, cls, word):
        if not 0 <= j < len(stems): return ''
        t = re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(titles[stems[j]]))
        return f'<a class="{cls}" rel="{cls[3:]}" href="{page_name(stems[j])}"><small>{word}</small>{t}</a>'
    return f'<footer class="cn-pager">{link(i - 1, "cn-prev", "&larr; Previous")}{link(i + 1, "cn-next", "Next &rarr;")}</footer>'


def sidebar_yml(stems):
    "nbs/sidebar.yml for the published (Quarto) site: the home page first, as `Home`, then every chapter."
    home = cfg.readme_nb
    contents = [{'text': 'Home', 'href': home}] + [f"{s}.ipynb" for s in stems if f"{s}.ipynb" != home]
    return yaml.safe_dump({'website': {'sidebar': {'contents': contents}}}, sort_keys=False, indent=2)


# ---------------------------------------------------------------- checks on what a reader gets

SKIP_TEXT = {'script', 'style', 'pre', 'code', 'kbd', 'samp', 'textarea', 'math', 'svg'}
BLOCKS = {'p', 'div', 'li', 'td', 'th', 'tr', 'table', 'ul', 'ol', 'dl', 'dt', 'dd', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6',
          'blockquote', 'br', 'hr', 'pre', 'section', 'main', 'nav', 'details', 'summary', 'figure', 'figcaption'}
VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr'}


INLINE_URL = re.compile(r"""(?:https?:)?//[\w-]+(?:\.[\w-]+)+[^\s'"()]*""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+(?:url\()?['"]?([^'");\s]+)""")


def inline_requests(code, tag):
    "URLs on other hosts that an inline script or stylesheet may fetch (comments and SVG namespaces aside)."
    code = re.sub(r'/\*.*?\*/', '', code, flags=re.S)
    if tag == 'style':
        code = ' '.join(a or b for a, b in CSS_URL.findall(code))
    else: code = re.sub(r'(?m)^\s*//.*$', '', code)
    return [u for u in INLINE_URL.findall(code) if '//www.w3.org/' not in u]


class PageScan(HTMLParser):
    "What a browser would show of a page: its prose text (not code, not typeset math), headings, ids and links."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.text, self.headings, self.ids, self.links, self.inline_urls = [], [], [], set(), [], []
        self._heading = None

    def skipping(self): return any(skip for _, skip in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if a.get('name') and tag == 'a': self.ids.add(a['name'])
        for attr in ('href', 'src'):
            if a.get(attr) is not None: self.links.append((tag, attr, a[attr], a.get('rel', '')))
        if tag in BLOCKS: self.text.append('\n\n')
        if tag in ('h1', 'h2', 'h3', 'h4', 'h5', 'h6'): self._heading = []
        if tag in VOID: return
        cls = a.get('class') or ''
        skip = tag in SKIP_TEXT or 'katex' in cls.split() or 'anchor-link' in cls.split()
        self.stack.append((tag, skip))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag: self.stack.pop()

    def handle_endtag(self, tag):
        if tag in BLOCKS: self.text.append('\n\n')
        if tag in ('h1', 'h2', 'h3', 'h4', 'h5', 'h6') and self._heading is not None:
            self.headings.append(' '.join(''.join(self._heading).split()))
            self._heading = None
        if any(t == tag for t, _ in self.stack):
            while self.stack and self.stack.pop()[0] != tag: pass

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] in ('script', 'style'):
            self.inline_urls += inline_requests(data, self.stack[-1][0])
        if self._heading is not None and not any(skip and t != 'code' for t, skip in self.stack):
            self._heading.append(data)
        if not self.skipping(): self.text.append(data)


RAW_MATH = [re.compile(p, re.S) for p in (
    r'\$\$.+?\$\$',                                                 # display math
    r'\\\[.+?\\\]', r'\\\(.+?\\\)', r'\\begin\{[a-zA-Z*]+\}',         # LaTeX delimiters, environments
    r'(?<![\\$\w])\$(?=[^\s$])(?:[^$\n]|\n(?!\n))*?[^\s$\\]\$(?![\d$\w])')]  # inline: pandoc's rule for $...$


def raw_math(text):
    "Snippets of text a reader would see as untypeset LaTeX."
    return [' '.join(m.group(0).split())[:80] for rx in RAW_MATH for m in rx.finditer(text)]


def show_doc_names(nb):
    "The entries a processed notebook asks for: (each `show_doc(X)` call's title, the cell's call count, the titles it rendered)."
    names = []
    for c in nb.cells:
        if c.cell_type != 'code' or 'show_doc' not in c.source: continue
        try: calls = [n for n in ast.walk(ast.parse(c.source)) if isinstance(n, ast.Call) and
                      getattr(n.func, 'id', getattr(n.func, 'attr', None)) == 'show_doc' and n.args]
        except SyntaxError: continue
        for call in calls:
            name = next((k.value.value for k in call.keywords if k.arg == 'name' and isinstance(k.value, ast.Constant)),
                        ast.unparse(call.args[0]))
            shown = [h for o in c.get('outputs', []) for h in re.findall(
                r'^#+\s+(.+?)\s*$', ''.join(o.get('data', {}).get('text/markdown', '')), re.M)]
            names.append((name, len(calls), shown))
    return names


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


NOISE = [re.compile(p) for p in (
    r'^USDT:', r'\bprofiler_(start|stop)\b',           # PyTorch's profiler tracing to stderr
    r'No CUDA runtime is found',                       # torch.utils.cpp_extension on a machine without CUDA
    r'^\[W\d{4} [\d:.]+ ',                             # c10 warnings (`[W1207 19:10:02.123 ...]`)
)]
HIDDEN = re.compile(r'^#\|\s*(hide\s*$|include:\s*false|output:\s*false)', re.M)


def noise(nb):
    "What a reader would see as noise in a processed notebook's visible cells: known stderr chatter, empty HTML outputs left by progress bars, nbdev's tooling imported in view."
    found = []
    for c in nb.cells:
        if c.cell_type != 'code' or HIDDEN.search(c.source): continue
        stderr, empty = [], 0
        for o in c.get('outputs', []):
            if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
                stderr += [l for l in ''.join(o.get('text', '')).splitlines() if any(rx.search(l) for rx in NOISE)]
            h = ''.join(o.get('data', {}).get('text/html', ''))
            if 'text/html' in o.get('data', {}) and not re.sub(r'<[^>]*>|&nbsp;|\s', '', h) and \
               not re.search(r'<(img|svg|video|canvas|iframe|object)\b', h): empty += 1
        where = f"cell {c.get('id', '?')}"
        if stderr: found.append(f"{where}: {len(stderr)} line(s) of stderr noise, first {stderr[0][:90]!r}")
        if empty: found.append(f"{where}: {empty} empty HTML output(s) (what a progress bar leaves behind)")
        if re.search(r'^\s*(from\s+nbdev[\w.]*\s+import|import\s+nbdev)', c.source, re.M) and \
           not re.search(r'^#\|\s*echo:\s*false', c.source, re.M):
            found.append(f"{where}: imports nbdev's tooling in view of the reader (put it in a `#| hide` cell)")
    return found


def entries(nb):
    "The API entries (show_doc outputs) of a processed notebook: (cell id, title, source link or None)."
    out = []
    for c in nb.cells:
        for o in c.get('outputs', []) if c.cell_type == 'code' else []:
            md = ''.join(o.get('data', {}).get('text/markdown', ''))
            m = re.match(r'---\s*(?:\[source\]\(([^)\s]*)\)[^\n]*\s*)?#+\s+(\S+)', md)
            if m: out.append((c.get('id', '?'), m.group(2), m.group(1)))
    return out


def library_symbols():
    "Qualified names (`learner.Learner.fit`, `models.ModelInfo`) of the public functions, classes and methods the library exports, from the symbol index."
    syms = importlib.import_module(f"{cfg.lib_name}._modidx").d['syms']
    return {k[len(cfg.lib_name) + 1:]: k for d in syms.values() for k in d}


def entry_problems(proc_nbs_):
    "API entries without a source link (with a line number), entries rendered twice, and exported names missing from the symbol index (so without any source link)."
    problems, index = [], library_symbols()
    for stem, nb in proc_nbs_.items():
        seen = {}
        for cid, title, src in entries(nb):
            known = any(k.endswith('.' + title) or k == title for k in index)
            if known and not (src and re.search(r'#L\d+$', src)):
                problems.append(f"{page_name(stem)}: the entry for {title} (cell {cid}) has no source link"
                                + (f" (it points at {src})" if src else ''))
            key = src or title
            if key in seen: problems.append(f"{page_name(stem)}: {title} (cell {cid}) repeats the entry {seen[key]} ({key})")
            seen[key] = title
    for short_name, mod_name in library_modules():
        mod = importlib.import_module(mod_name)
        defined = {n.name for n in ast.parse(Path(mod.__file__).read_text(encoding='utf-8')).body
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        for name in getattr(mod, '__all__', []):
            if name.startswith('_') or name not in defined: continue  # made by assignment: indexed only with an entry of its own
            if f"{short_name}.{name}" not in index:
                problems.append(f"{short_name}.{name} is not in nbdev's symbol index ({cfg.lib_name}/_modidx.py), so it has no source link"
                                " (only modules exported from a notebook are indexed, and nbdev 2.4 skips notebooks whose name contains 'auto')")
    return problems


def library_modules():
    "(short name, module name) of each public module of the library, packages included (`models` for models/__init__.py)."
    lib = ROOT/cfg.lib_path
    for f in sorted(lib.rglob('*.py')):
        rel = f.relative_to(lib).with_suffix('').parts
        if rel[-1] == '__init__': rel = rel[:-1]
        if not rel or any(p.startswith('_') for p in rel) or rel == ('all',): continue  # `all` only gathers exports
        yield '.'.join(rel), f"{cfg.lib_name}.{'.'.join(rel)}"


def undocumented_symbols(proc_nbs_):
    "Exported public names that have no documentation entry anywhere in the processed notebooks."
    doc = set().union(*(documented_names(nb) for nb in proc_nbs_.values()))
    shown = {n.split('.')[-1] for n in doc} | doc
    missing = []
    for short, mod_name in library_modules():
        mod = importlib.import_module(mod_name)
        for name in getattr(mod, '__all__', []):
            if name.startswith('_'): continue
            if name not in shown: missing.append(f"{short}.{name}")
            obj = getattr(mod, name)
            if callable(obj) and getattr(obj, '__module__', None) == mod.__name__ and not (obj.__doc__ or '').strip():
                missing.append(f"{short}.{name} (no docstring)")
    return missing


def check_page(page, scan, existing, ids):
    "Problems a reader would meet on one rendered page: raw LaTeX, links to nothing, resources from the network."
    problems = [f"{page}: math not typeset (raw LaTeX a reader would see): {s!r}" for s in raw_math(''.join(scan.text))]
    for tag, attr, url, rel in scan.links:
        parts = urlsplit(url)
        if parts.scheme in ('http', 'https') or url.startswith('//'):
            if tag in ('script', 'img', 'iframe', 'source', 'video', 'audio', 'embed') or (tag == 'link' and 'stylesheet' in rel):
                problems.append(f"{page}: loads {url} from the network (the offline site must not)")
            continue
        if parts.scheme: continue  # mailto:, data:, javascript:
        target = unquote(parts.path) or page
        if target not in existing:
            problems.append(f"{page}: link to {url!r}: no page {target!r} in {DOCS.relative_to(ROOT)}/"
                            + (" (link to the notebook, `NN_name.ipynb`, or to its page)" if target.endswith(('.html', '.ipynb')) else ''))
        elif re.search(r'(^|\.)_', unquote(parts.fragment)):
            problems.append(f"{page}: link to {url!r}: a private name (only public names have entries to link)")
        elif parts.fragment and target in ids and unquote(parts.fragment) not in ids[target]:
            problems.append(f"{page}: link to {url!r}: {target} has no entry or heading #{parts.fragment}")
    problems += [f"{page}: a script or style on the page fetches {u} (the offline site loads nothing from the network)"
                 for u in scan.inline_urls]
    return problems


def build_site():
    "Render every notebook to docs/*.html with nbdev's processors, nbconvert and KaTeX; fail on any problem."
    problems = []
    stems = notebook_stems()
    for s in stems:
        errs = error_outputs(nbformat.read(NBS/f"{s}.ipynb", as_version=4))
        if errs: problems.append(f"{s}.ipynb: saved error output(s): {', '.join(errs)}")
    sidebar = NBS/'sidebar.yml'
    if not sidebar.exists() or sidebar.read_text() != sidebar_yml(stems):
        sidebar.write_text(sidebar_yml(stems))
        problems.append("nbs/sidebar.yml was out of date with the notebooks: rewritten, commit it")
    _build_modidx()
    index_package_inits()
    index_assigned_functions()
    public_symbol_index()
    cache, errors = process_all()
    problems += errors
    processed = {p.stem: frontmatter_to_md(nbformat.read(p, as_version=4)) for p in sorted(cache.glob('*.ipynb'))}
    home = cfg.readme_nb.removesuffix('.ipynb')
    pages = sorted(((stem, page_title(nb, stem)) for stem, nb in processed.items()), key=lambda p: (p[0] != home, p[0]))
    titles = dict(pages)

    exporter = OfflineHTMLExporter()
    bodies = {}
    for stem, nb in processed.items():
        errs = error_outputs(nb)
        if errs: problems.append(f"{stem}: error output(s) while rendering docs: {', '.join(errs)}")
        title = cfg.title if stem == home else f"{titles[stem].split(' ', 1)[-1]} - {cfg.title}"
        try: bodies[stem], _ = exporter.from_notebook_node(quarto_like(nb), resources={'metadata': {'name': title}})
        except Exception as e: problems.append(f"{stem}: render failed: {type(e).__name__}: {e}")

    formulas = exporter.formulas
    unique = sorted(set(formulas))
    typeset_html = dict(zip(unique, typeset(unique)))
    for stem in bodies:
        body = heading_ids(bodies[stem], formulas)
        def fill(m, stem=stem):
            tex, display = formulas[int(m.group(1))]
            out = typeset_html[(tex, display)]
            if not display and tex != tex.strip():  # pandoc's rule: `$` hugs its formula; `$5 and $10` is prose
                problems.append(f"{page_name(stem)}: ${tex}$ typeset as math: dollar signs in prose are written \\$")
            if 'error' in out:
                problems.append(f"{page_name(stem)}: KaTeX cannot typeset {tex.strip()[:80]!r}: {out['error']}")
                return html.escape(f"$${tex}$$" if display else f"${tex}$")  # left raw: the raw-math check names it too
            return out['html']
        body = MATH_MARK.sub(fill, body)
        body = rewrite_links(body, set(stems))
        body = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav_html(pages, stem, page_toc(body)), body, count=1)
        bodies[stem] = body.replace('</main>', pager_html(pages, stem) + '\n</main>', 1)

    heads = {page_name(stem): set(re.findall(r'<h[1-6] id="([^"]*)"', body)) for stem, body in bodies.items()}
    for stem in bodies: bodies[stem] = to_class_entries(bodies[stem], heads)

    DOCS.mkdir(exist_ok=True)
    for old in DOCS.glob('*.html'): old.unlink()  # a stale page must not satisfy a link
    shutil.rmtree(DOCS/'katex', ignore_errors=True)
    for stem, body in bodies.items(): (DOCS/page_name(stem)).write_text(body)
    copy_katex_assets()
    (DOCS/'site.css').write_text(SITE_CSS)

    existing = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob('*') if p.is_file()}
    scans = {page_name(stem): PageScan() for stem in bodies}
    for stem, body in bodies.items(): scans[page_name(stem)].feed(body); scans[page_name(stem)].close()
    ids = {page: scan.ids for page, scan in scans.items()}
    for stem in bodies:
        page, scan = page_name(stem), scans[page_name(stem)]
        problems += check_page(page, scan, existing, ids)
        for name, n_calls, shown in show_doc_names(processed[stem]):
            if name in scan.headings: continue
            why = (f"{n_calls} show_doc calls in one cell render only the last: one call per cell" if n_calls > 1 else
                   f"its cell renders {', '.join(map(repr, shown))} instead" if shown else "its cell renders nothing")
            problems.append(f"{page}: the entry for show_doc({name}) is not on the page ({why})")
    if home in bodies:  # the home page's own text, not its sidebar, links every chapter
        text = bodies[home].split('</nav>', 1)[-1].split('<footer class="cn-pager">', 1)[0]
        body_links = {urlsplit(html.unescape(u)).path for u in re.findall(r'href="([^"]*)"', text)}
        problems += [f"the home page ({cfg.readme_nb}) does not link {stem}.ipynb" for stem, _ in pages
                     if stem != home and page_name(stem) not in body_links]
    problems += [f"no documentation entry for exported symbol {s}" for s in undocumented_symbols(processed)]
    problems += entry_problems(processed)
    problems += [f"{s}.ipynb: {n}" for s, nb in processed.items() for n in noise(nb)]
    problems += check_layout([page_name(stem) for stem in bodies])
    print(f"rendered {len(bodies)} pages into {DOCS.relative_to(ROOT)}/ ({len(unique)} distinct formulas typeset by KaTeX {KATEX_VERSION})")
    for p in problems: print("DOCS ERROR:", p)
    return not problems


def error_outputs(nb):
    "Names of errors saved in a notebook's outputs."
    return [o.get('ename', 'error') for c in nb.cells if c.cell_type == 'code'
            for o in c.get('outputs', []) if o.get('output_type') == 'error']


# ---------------------------------------------------------------- layout, as a browser lays the pages out

WIDTHS = {'desktop': 1366, 'phone': 390}

LAYOUT_JS = """<script>addEventListener('load', () => {
  const main = document.querySelector('main'), nav = document.querySelector('.cn-nav'), out = {clipped: []};
  for (const el of main.querySelectorAll('*')) {
    if (el.closest('.katex') || el.clientWidth === 0) continue;
    const ox = getComputedStyle(el).overflowX;
    if ((ox === 'hidden' || ox === 'clip') && el.scrollWidth > el.clientWidth + 1) {
      const cell = el.closest('.jp-Cell');
      out.clipped.push((cell ? cell.id.replace('cell-id=', 'cell ') : el.tagName) + ': .' + [...el.classList].join('.'));
    }
  }
  const ctx = document.createElement('canvas').getContext('2d'), sample = 'the quick brown fox jumps over a lazy dog, 1234 ';
  let measure = 0;
  for (const p of main.querySelectorAll('.jp-RenderedMarkdown > p')) {
    ctx.font = getComputedStyle(p).font;
    measure = Math.max(measure, Math.round(p.clientWidth / (ctx.measureText(sample).width / sample.length)));
  }
  const box = main.getBoundingClientRect(), navBox = nav.getBoundingClientRect();
  Object.assign(out, {measure, page: document.documentElement.scrollWidth, window: innerWidth, main: Math.round(box.width),
    navShown: getComputedStyle(nav).display !== 'none', overlap: getComputedStyle(nav).display !== 'none' && navBox.right > box.left + 1});
  parent.postMessage(JSON.stringify(out), '*');
});</script>"""

# headless Chromium's window is at least 500 px wide: a page is laid out at a phone's width inside an iframe that wide
FRAME = """<!doctype html><html><body style="margin:0"><iframe src="%s" style="border:0;width:%dpx;height:%dpx"></iframe>
<script>addEventListener('message', e => document.body.setAttribute('data-cn-layout', e.data))</script></body></html>"""


def framed(page, width, height, script=''):
    "Write a copy of `page` (with `script` added) and a page that frames it at `width` x `height`: the two temporary files."
    inner, outer = DOCS/f"_frame_{width}_{page}", DOCS/f"_framing_{width}_{page}"
    inner.write_text((DOCS/page).read_text().replace('</body>', script + '</body>', 1))
    outer.write_text(FRAME % (inner.name, width, height))
    return inner, outer


def browser():
    "Headless Chromium, if the machine has it."
    return next((b for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)


def chromium(args, timeout=180):
    "Run headless Chromium offline on a throwaway profile: its stdout."
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser(), '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                               '--disable-component-update', '--disable-sync', '--no-first-run', '--hide-scrollbars',
                               '--host-resolver-rules=MAP * ~NOTFOUND', f'--user-data-dir={profile}', *args],
                              check=True, capture_output=True, text=True, timeout=timeout).stdout


def layout_one(item):
    "Lay one page out at one width: its problems."
    page, width_name = item
    width = WIDTHS[width_name]
    files = framed(page, width, 900, LAYOUT_JS)
    try: dom = chromium(['--dump-dom', f'--window-size={max(width, 500)},900', '--virtual-time-budget=5000', files[1].resolve().as_uri()])
    except subprocess.SubprocessError as e: return [f"{page} ({width_name}): Chromium failed: {e}"]
    finally:
        for f in files: f.unlink()
    m = re.search(r'data-cn-layout="([^"]*)"', dom)
    if not m: return [f"{page} ({width_name}): the layout script did not report"]
    r, at = json.loads(html.unescape(m.group(1))), f"{page} at {WIDTHS[width_name]} px"
    problems = [f"{at}: code or output cut off at the right edge, with no scrollbar: {c}" for c in r['clipped'][:5]]
    if len(r['clipped']) > 5: problems.append(f"{at}: ... and {len(r['clipped']) - 5} more cut-off elements")
    if r['page'] > r['window'] + 1: problems.append(f"{at}: the page scrolls sideways ({r['page']} px wide)")
    if r['overlap']: problems.append(f"{at}: the sidebar covers the text")
    if width_name == 'desktop' and not 50 <= r['measure'] <= 90:
        problems.append(f"{at}: paragraphs run to about {r['measure']} characters a line (aim for about 80)")
    if width_name == 'phone' and (r['navShown'] or r['main'] < 0.9 * r['window']):
        problems.append(f"{at}: the sidebar does not fold away (the text column is {r['main']} px of {r['window']})")
    return problems


def check_layout(pages):
    "Lay every page out in headless Chromium at desktop and phone widths; skipped, with a note, without Chromium."
    if not browser():
        print("DOCS NOTE: no Chromium here: the layout checks (cut-off code, line length, the phone layout) were skipped")
        return []
    items = [(p, w) for p in pages for w in WIDTHS]
    with multiprocessing.pool.ThreadPool(min(4, os.cpu_count() or 1)) as pool:
        return [p for ps in pool.map(layout_one, items) for p in ps]


# ---------------------------------------------------------------- screenshots (for a person to look at; not in CI)

SHOW_FROM_JS = """<script>{const el = document.getElementById(%s);
if (el) { let c = el.closest('.jp-Cell') || el; while (c.previousElementSibling) c.previousElementSibling.remove(); }}</script>"""


def screenshots(out_dir, pages=()):
    "Screenshot built pages (`name.html`, or `name.html#anchor` to start there) at desktop and phone widths with headless Chromium, offline."
    if not browser(): sys.exit("no Chromium: `apt-get install -y chromium`")
    from PIL import Image
    out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
    pages = list(pages) or sorted(p.name for p in DOCS.glob('*.html'))
    for page in pages:
        name, _, anchor = page.partition('#')
        if not (DOCS/name).exists(): sys.exit(f"no page {DOCS/name}: run `python .ci/docs.py site` first")
        # headless screenshots of a scrolled page come out blank: drop the cells above the anchor instead
        script = SHOW_FROM_JS % json.dumps(anchor) if anchor else ''
        for width_name, width in WIDTHS.items():
            height = 2000 if width_name == 'desktop' else 1600
            png = out/(Path(name).stem + ('-' + re.sub(r'[^\w.-]', '_', anchor) if anchor else '') + f'-{width_name}.png')
            files = framed(name, width, height, script)
            try: chromium([f'--screenshot={png}', f'--window-size={max(width, 500)},{height}', '--virtual-time-budget=5000',
                           files[1].resolve().as_uri()])
            finally:
                for f in files: f.unlink()
            if width < 500: Image.open(png).crop((0, 0, width, height)).save(png)
            print(png)


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else 'site'
    if cmd == 'readme': build_readme()
    elif cmd == 'site': sys.exit(0 if build_site() else 1)
    elif cmd == 'shots' and len(sys.argv) > 2: screenshots(sys.argv[2], sys.argv[3:])
    else: sys.exit("usage: python .ci/docs.py [readme | site | shots DIR [PAGE.html[#anchor] ...]]")
