"""README.md and docs/ stay true: every relative link resolves (file and heading), every command
line they show names flags its program defines (and config keys its config has), and every
name docs/api.md lists imports from `skeleton_anon`."""

import importlib.util
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ['README.md', 'BENCHMARKS.md'] + sorted(
    os.path.join('docs', name) for name in os.listdir(os.path.join(ROOT, 'docs'))
    if name.endswith('.md'))

_LINK = re.compile(r'(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)')
_FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.M | re.S)
_INLINE = re.compile(r'`(python3? [^`]+)`')
_ABSL = re.compile(r"DEFINE_\w+\(\s*'(\w+)'")
_ARGPARSE = re.compile(r"add_argument\(\s*'(--[\w-]+)'(?:\s*,\s*'(--[\w-]+)')?")


def _read(page: str) -> str:
  with open(os.path.join(ROOT, page)) as f:
    return f.read()


def _slug(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
  text = re.sub(r'[`*_]', '', heading.strip().lower())
  text = re.sub(r'[^\w\- ]', '', text)
  return text.replace(' ', '-')


def _anchors(page: str) -> set[str]:
  text = _FENCE.sub('', _read(page))
  return {_slug(m.group(1)) for m in re.finditer(r'^#{1,6} (.+)$', text, re.M)}


def _links():
  for page in PAGES:
    text = _FENCE.sub('', _read(page))
    for target in _LINK.findall(text):
      if not re.match(r'[a-z]+:', target):
        yield page, target


@pytest.mark.parametrize('page,target', list(_links()))
def test_relative_link_resolves(page, target):
  path, _, anchor = target.partition('#')
  resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path else \
      os.path.join(ROOT, page)
  assert os.path.exists(resolved), f'{page}: link {target!r} points at nothing'
  if anchor and resolved.endswith('.md'):
    assert anchor in _anchors(os.path.relpath(resolved, ROOT)), \
        f'{page}: link {target!r}: no such heading'


def _command_lines():
  """(page, argv) of every `python ...` command line in fenced blocks and inline code."""
  for page in PAGES:
    text = _read(page)
    chunks = [body for lang, body in _FENCE.findall(text) if lang in ('bash', 'sh', '')]
    snippets = []
    for body in chunks:
      snippets += body.replace('\\\n', ' ').splitlines()
    snippets += _INLINE.findall(text)
    for snippet in snippets:
      snippet = snippet.split('  #')[0].split(' # ')[0]
      for part in re.split(r'&&|;| -- | \| |->', snippet):
        words = part.replace('[', ' ').replace(']', ' ').split()
        if len(words) >= 2 and words[0] in ('python', 'python3'):
          yield page, words[1:]


def _program_source(argv):
  """(path of the program's source, the arguments after it) or None for what is not ours."""
  if argv[0] == '-m':
    module = argv[1]
    if not module.startswith('skeleton_anon'):
      return None
    spec = importlib.util.find_spec(module)
    path = spec.origin
    if path.endswith('__init__.py'):
      path = os.path.join(os.path.dirname(path), '__main__.py')
    return path, argv[2:]
  path = os.path.join(ROOT, argv[0])
  if not argv[0].endswith('.py') or not argv[0].split('/')[0] in (
      'studies', 'benchmarks', 'examples', 'launch'):
    return None
  return path, argv[1:]


def _defined_flags(path: str) -> set[str]:
  source = open(path).read()
  names = {f'--{n}' for n in _ABSL.findall(source)}
  for pair in _ARGPARSE.findall(source):
    names.update(n for n in pair if n)
  # absl booleans also parse as --noNAME; absl's own flags
  names |= {f'--no{n[2:]}' for n in names} | {'--help', '--helpfull', '--flagfile'}
  return names


def _config_keys(argv):
  """The --config file's flattened keys, or None when the line does not name a real file."""
  spec = next((a.split('=', 1)[1] for a in argv if a.startswith('--config=')), None)
  if spec is None:
    return None
  path, _, arg = spec.partition(':')
  full = os.path.join(ROOT, path)
  if not os.path.isfile(full):
    return None
  import sys
  sys.path.insert(0, os.path.dirname(full))
  try:
    loader = importlib.util.spec_from_file_location(f'_docs_config_{abs(hash(full))}', full)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  finally:
    sys.path.pop(0)
  keys = set()

  def walk(node, prefix):
    for key in node.keys():
      keys.add(prefix + key)
      value = node[key]
      if hasattr(value, 'keys'):
        walk(value, f'{prefix}{key}.')
  walk(config, '')
  return keys


def _program_lines():
  out = []
  for page, argv in _command_lines():
    program = _program_source(argv)
    if program is not None:
      out.append(pytest.param(page, program[0], program[1],
                              id=f'{page}:{" ".join(argv)[:70]}'))
  return out


@pytest.mark.parametrize('page,path,args', _program_lines())
def test_command_line_flags_exist(page, path, args):
  assert os.path.isfile(path), f'{page}: no program {path}'
  known = _defined_flags(path)
  keys = None
  for arg in args:
    if not arg.startswith('--') or arg in ('--', '...'):
      continue
    name = arg.split('=', 1)[0]
    if name.startswith('--config.'):
      key = name[len('--config.'):]
      if key in ('a.b',):                    # the generic placeholder of the usage lines
        continue
      keys = _config_keys(args) if keys is None else keys
      if keys is not None:
        assert key in keys, f'{page}: {arg}: the config has no key {key!r}'
      continue
    assert name in known, f'{page}: {os.path.relpath(path, ROOT)} defines no flag {name}'


def test_every_name_in_the_api_page_imports():
  import skeleton_anon
  text = _read(os.path.join('docs', 'api.md'))
  names = set(re.findall(r'^\| `(\w+)` \|', text, re.M))
  assert names, 'docs/api.md lists no names'
  assert names == set(skeleton_anon.API), 'docs/api.md and skeleton_anon.API disagree'
  for name in sorted(names):
    assert getattr(skeleton_anon, name) is not None
  with pytest.raises(AttributeError):
    skeleton_anon.not_a_public_name  # noqa: B018
