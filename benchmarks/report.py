"""Renders the JSON written by benchmarks/run.py as the Markdown tables of BENCHMARKS.md.

  python benchmarks/report.py OUT.json > tables.md
"""

from __future__ import annotations

import json
import sys


def _fmt(value, digits: int = 3) -> str:
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:.{digits}g}'
  return str(value)


def _find(results, name, **match):
  for r in results:
    if r.get('name') == name and all(r.get(k) == v for k, v in match.items()):
      return r
  return None


def steps_table(results) -> list[str]:
  lines = ['| step | batch | T | ours samples/s | reference samples/s | ours / reference | '
           'compile s | ours peak RSS MiB | reference peak RSS MiB |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in results:
    if r.get('implementation') != 'jax' or r['name'] not in ('min_step', 'max_step',
                                                              'classifier_step'):
      continue
    ref = _find(results, f"reference_{r['name']}", frames=r['frames'])
    ref_batch = f" (batch {ref['batch']})" if ref and ref.get('batch') != r['batch'] else ''
    lines.append(
        f"| {r['name']} | {r['batch']} | {r['frames']} | {_fmt(r.get('samples_per_s'))} | "
        f"{_fmt(ref.get('samples_per_s') if ref else None)}{ref_batch} | "
        f"{_fmt(r.get('speedup_vs_reference'))} | {_fmt(r.get('compile_s'))} | "
        f"{_fmt(r.get('peak_rss_mib'), 5)} | {_fmt(ref.get('peak_rss_mib') if ref else None, 5)} |")
  return lines


def flops_table(results) -> list[str]:
  lines = ['| measurement | GFLOP per step | achieved GFLOP/s | fraction of matmul rate |',
           '|---|---|---|---|']
  for r in results:
    if r.get('gflop_per_s') is None or r['name'] in MODEL_NAMES:  # those have their own table
      continue
    if r['name'] in LOOPED_NAMES:
      continue       # XLA's cost analysis counts a lax.map body once, not once per member
    label = f"{r['name']} (batch {r['batch']}, T={r['frames']})" if r.get('frames') else r['name']
    lines.append(f"| {label} | {_fmt(r.get('gflop_per_step'))} | {_fmt(r.get('gflop_per_s'))} | "
                 f"{_fmt(r.get('fraction_of_matmul'))} |")
  return lines


LOOPED_NAMES = ('ensemble_min_step_map',)


MODEL_NAMES = ('model_forward', 'model_fwd_bwd')


def _pair(forward, fwd_bwd, key: str, whole: bool = False) -> str:
  """'forward / fwd+bwd' values of one column (`whole`: rounded to integers, e.g. MiB)."""
  values = [r.get(key) if r else None for r in (forward, fwd_bwd)]
  return ' / '.join(_fmt(round(v) if whole and v is not None else v) for v in values)


def models_table(results) -> list[str]:
  """One row per classifier (and size): eval forward and train forward+backward side by side."""
  rows = {}
  for r in results:
    if r['name'] in MODEL_NAMES:
      key = (r.get('model'), r.get('batch'), r.get('frames'), r.get('num_classes'),
             r.get('num_persons'))
      rows.setdefault(key, {})[r['name']] = r
  if not rows:
    return []
  lines = ['| model | classes | persons | params | batch | T | forward samples/s | '
           'fwd+bwd samples/s | GFLOP/step fwd / fwd+bwd | GFLOP/s fwd / fwd+bwd | '
           'compile s fwd / fwd+bwd | peak RSS MiB fwd / fwd+bwd |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|']
  for (model, batch, frames, classes, persons), pair in rows.items():
    fwd, bwd = pair.get('model_forward'), pair.get('model_fwd_bwd')
    params = next((r['params'] for r in (fwd, bwd) if r and r.get('params')), None)
    lines.append(
        f"| {model} | {_fmt(classes)} | {_fmt(persons)} | {_fmt(params)} | {batch} | {frames} | "
        f"{_fmt(fwd.get('samples_per_s') if fwd else None)} | "
        f"{_fmt(bwd.get('samples_per_s') if bwd else None)} | "
        f"{_pair(fwd, bwd, 'gflop_per_step')} | {_pair(fwd, bwd, 'gflop_per_s')} | "
        f"{_pair(fwd, bwd, 'compile_s')} | {_pair(fwd, bwd, 'peak_rss_mib', whole=True)} |")
  return lines


def ensemble_table(results) -> list[str]:
  lines = ['| 3a3p ensemble min step | batch | T | samples/s | compile s | peak RSS MiB |',
           '|---|---|---|---|---|---|']
  for name in ('ensemble_min_step_vmap', 'ensemble_min_step_map', 'ensemble_min_step_loop'):
    r = _find(results, name)
    if r:
      lines.append(f"| {name} | {r['batch']} | {r['frames']} | {_fmt(r.get('samples_per_s'))} | "
                   f"{_fmt(r.get('compile_s'))} | {_fmt(r.get('peak_rss_mib'), 5)} |")
  for form in ('vmap', 'map'):
    r = _find(results, f'ensemble_min_step_{form}')
    if r and r.get('speedup_vs_loop'):
      lines.append(f"\n{form} / loop: **{r['speedup_vs_loop']:.2f}x**")
  return lines


def data_table(results) -> list[str]:
  lines = ['| data preparation | implementation | workers | files/s | frames/s | samples/s |',
           '|---|---|---|---|---|---|']
  for r in results:
    if r['name'] in ('ntu_parse', 'ntu_parse_naive', 'reference_ntu_parse', 'ntu_read_folder'):
      lines.append(f"| {r['name']} | {r.get('implementation')} | {r.get('workers', 1)} | "
                   f"{_fmt(r.get('samples_per_s'))} | {_fmt(r.get('frames_per_s'))} | - |")
    elif r['name'] in ('pre_normalization', 'pre_normalization_naive',
                       'reference_pre_normalization'):
      lines.append(f"| {r['name']} (N={r['batch']}, T={r['frames']}) | "
                   f"{r.get('implementation')} | 1 | - | - | {_fmt(r.get('samples_per_s'))} |")
  parse, norm = _find(results, 'ntu_parse'), _find(results, 'pre_normalization')
  if parse:
    lines.append(f"\nparsing per worker: {_fmt(parse.get('speedup_vs_reference'))}x the reference, "
                 f"{_fmt(parse.get('speedup_vs_naive'))}x the naive parser "
                 f"(same arrays as the naive parser: {parse.get('matches_naive')})")
  if norm:
    lines.append(f"pre_normalization: {_fmt(norm.get('speedup_vs_reference'))}x the reference, "
                 f"{_fmt(norm.get('speedup_vs_naive'))}x the per-sample loop; max |ours - "
                 f"reference| = {_fmt(norm.get('max_abs_diff_vs_reference'))}")
  return lines


def render(results) -> str:
  errors = [f"- {r['name']}: {r['error']}" for r in results if r.get('error')]
  sections = [steps_table(results), flops_table(results), ensemble_table(results),
              data_table(results), models_table(results)]
  text = '\n\n'.join('\n'.join(s) for s in sections if s)
  if errors:
    text += '\n\nFailed measurements:\n' + '\n'.join(errors)
  return text + '\n'


def main():
  if len(sys.argv) != 2:
    raise SystemExit('usage: python benchmarks/report.py OUT.json')
  with open(sys.argv[1]) as f:
    print(render(json.load(f)))


if __name__ == '__main__':
  main()
