"""Where a jitted training step spends its time: a per-op profile from the XLA CPU runtime.

  python benchmarks/profile_step.py --measure=min_step --batch=8 --frames=64 [--json OUT.json]

Traces a few steps with jax.profiler (XLA CPU emits one trace event per executed op when
--xla_cpu_enable_xprof_traceme is on), sums the time of each op on the executor threads, and
classifies every op by what its HLO computes (matmul library call, convolution, dot, reduce-window
(max-pool), select-and-scatter (its gradient), reduction, data movement, elementwise). Prints the
share of time per class and the most expensive ops with their HLO shapes.
"""

from __future__ import annotations

import os

# Per-op trace events must be switched on before XLA initialises.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_cpu_enable_xprof_traceme=true').strip()

import argparse  # noqa: E402
import collections  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
from jax._src.lib import _profile_data  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)
from benchmarks import jax_steps  # noqa: E402

# Ops inside a computation, in the order that decides the class of a fusion calling it.
_CLASS_ORDER = ('convolution', 'dot', 'select-and-scatter', 'reduce-window', 'reduce', 'scatter',
                'gather', 'transpose', 'copy', 'pad', 'concatenate', 'slice',
                'dynamic-update-slice')
_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s+([\w\-]+)\((.*)$')
_COMPUTATION = re.compile(r'^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$')
# Runtime bookkeeping events that wrap or accompany the op events.
_NOT_OPS = ('ThreadpoolListener', 'end:', 'SlinkyThreadPool', 'ThunkExecutor')
_CALLS = re.compile(r'(?:calls|to_apply)=%?([\w.\-]+)')
_OP_NAME = re.compile(r'op_name="([^"]*)"')


class Instruction(collections.namedtuple('Instruction', 'opcode shape calls op_name flops',
                                         defaults=(0.0,))):
  """One HLO instruction: opcode, result shape, called computation, source op_name, dot FLOPs."""


def parse_hlo(text: str):
  """HLO text -> ({instruction: Instruction}, {computation: set of opcodes}).

  Each fusion's FLOPs are those of the dots inside the computation it calls.
  """
  instructions, computations, dots, current = {}, collections.defaultdict(set), [], None
  for line in text.splitlines():
    head = _COMPUTATION.match(line)
    if head and '=' not in line.split('{')[0]:
      current = head.group(1)
      continue
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, shape, opcode, rest = match.groups()
    calls = _CALLS.search(rest)
    op_name = _OP_NAME.search(rest)
    instructions[name] = Instruction(opcode, shape, calls.group(1) if calls else None,
                                     op_name.group(1) if op_name else '')
    if current:
      computations[current].add(opcode)
    if opcode == 'dot':
      dots.append((current, shape, rest))
  dot_flops, dot_source = collections.Counter(), {}
  for computation, shape, rest in dots:
    op_name = _OP_NAME.search(rest)
    lhs = instructions.get(rest.split(',')[0].strip().lstrip('%'))
    contracting = re.search(r'lhs_contracting_dims=\{([\d,]*)\}', rest)
    if lhs is None or contracting is None:
      continue
    lhs_dims = _dims(lhs.shape)
    k = 1
    for d in contracting.group(1).split(','):
      if d:
        k *= lhs_dims[int(d)]
    dot_flops[computation] += 2.0 * k * _num_elements(shape)
    # Not every dot keeps its source metadata; the contraction size still tells the kinds apart
    # (K = joints or window joints: graph aggregation; K = channels: 1x1 convolutions).
    dot_source.setdefault(computation, op_name.group(1) if op_name else f'dot K={k}')
  for name, ins in instructions.items():
    if ins.calls in dot_flops:
      instructions[name] = ins._replace(flops=dot_flops[ins.calls],
                                        op_name=dot_source.get(ins.calls, ins.op_name))
  return instructions, computations


def _dims(shape: str) -> list[int]:
  match = re.search(r'\[([\d,]*)\]', shape)
  return [int(d) for d in match.group(1).split(',') if d] if match else []


def _num_elements(shape: str) -> int:
  n = 1
  for d in _dims(shape):
    n *= d
  return n


def source_of(op_name: str) -> str:
  """A short name of the model operation an op comes from (einsum spec or primitive)."""
  if op_name.startswith('dot K='):
    return op_name
  parts = [p for p in op_name.split('/') if p]
  spec = next((p for p in parts if '->' in p), None)
  tail = parts[-1] if parts else '?'
  if spec:
    return f'einsum {spec}'
  return tail


def classify(name: str, instructions, computations) -> str:
  """The class of one executed op (by its own opcode or the ops of the computation it calls)."""
  if name not in instructions:
    return 'ynnpack/xnnpack matmul' if 'ynn' in name or 'xnn' in name else 'other'
  opcode, called = instructions[name].opcode, instructions[name].calls
  if 'ynn' in name or 'xnn' in name:
    return 'ynnpack/xnnpack matmul'
  ops = {opcode} | computations.get(called, set())
  for cls in _CLASS_ORDER:
    if cls in ops:
      return cls
  return 'elementwise'


def trace_steps(fn, args, advance, steps: int, log_dir: str):
  compiled = fn.lower(*args).compile()
  for _ in range(2):  # warm-up
    args = advance(jax.block_until_ready(compiled(*args)), args)
  jax.profiler.start_trace(log_dir)
  for _ in range(steps):
    args = advance(jax.block_until_ready(compiled(*args)), args)
  jax.profiler.stop_trace()
  return compiled


def op_times(log_dir: str) -> collections.Counter:
  """Seconds per op name, summed over XLA's threads (op events can run on any of them)."""
  path = sorted(glob.glob(os.path.join(log_dir, '**', '*.xplane.pb'), recursive=True))[-1]
  profile = _profile_data.ProfileData.from_file(path)
  seconds = collections.Counter()
  for plane in profile.planes:
    for line in plane.lines:
      if not line.name.startswith(('tf_XLAPjRtCpuClient', 'tf_XLAEigen')):
        continue
      for event in line.events:
        if event.name.startswith(_NOT_OPS):
          continue
        seconds[event.name] += event.duration_ns / 1e9
  return seconds


def profile(measure: str, batch: int, frames: int, steps: int) -> dict:
  data = jax_steps.make_batch(batch, frames)
  fn, args, advance = jax_steps.SUBJECTS[measure](data)
  with tempfile.TemporaryDirectory() as log_dir:
    compiled = trace_steps(fn, args, advance, steps, log_dir)
    seconds = op_times(log_dir)
  instructions, computations = parse_hlo(compiled.as_text())
  total = sum(seconds.values())
  by_class, by_source = collections.Counter(), collections.defaultdict(lambda: [0.0, 0.0])
  for name, sec in seconds.items():
    by_class[classify(name, instructions, computations)] += sec
    ins = instructions.get(name)
    if ins is not None and ins.flops:
      entry = by_source[source_of(ins.op_name)]
      entry[0] += sec
      entry[1] += ins.flops * steps
  top = []
  for name, sec in seconds.most_common(15):
    ins = instructions.get(name, Instruction('', '', None, ''))
    top.append({'op': name, 'class': classify(name, instructions, computations),
                'share': sec / total, 'ms_per_step': 1e3 * sec / steps, 'shape': ins.shape[:60],
                'source': source_of(ins.op_name),
                'gflop_per_s': ins.flops * steps / sec / 1e9 if ins.flops else None})
  matmul_sources = sorted(by_source.items(), key=lambda kv: -kv[1][0])
  return {'measure': measure, 'batch': batch, 'frames': frames, 'steps': steps,
          'op_seconds_per_step': total / steps,
          'by_class': {c: s / total for c, s in by_class.most_common()},
          'matmul_by_source': [{'source': src, 'share': sec / total,
                                'gflop_per_s': flops / sec / 1e9}
                               for src, (sec, flops) in matmul_sources[:12]],
          'top_ops': top}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--measure', default='min_step', choices=list(jax_steps.SUBJECTS))
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--frames', type=int, default=64)
  parser.add_argument('--steps', type=int, default=2)
  parser.add_argument('--json', default=None)
  args = parser.parse_args()
  result = profile(args.measure, args.batch, args.frames, args.steps)
  print(f"{result['measure']} batch {args.batch} T={args.frames}: "
        f"{result['op_seconds_per_step']:.2f} op-seconds per step (summed over threads)")
  print('time by op class:')
  for cls, share in result['by_class'].items():
    print(f'  {cls:28s} {100 * share:5.1f}%')
  print('matmul time by source (share of all op time, achieved GFLOP/s):')
  for row in result['matmul_by_source']:
    print(f"  {row['source'][:48]:48s} {100 * row['share']:5.1f}% {row['gflop_per_s']:7.1f}")
  print('top ops:')
  for op in result['top_ops']:
    rate = f"{op['gflop_per_s']:7.1f}" if op['gflop_per_s'] else '      -'
    print(f"  {op['op'][:28]:28s} {op['class'][:12]:12s} {100 * op['share']:5.1f}% "
          f"{op['ms_per_step']:8.1f} ms {rate} GF/s  {op['source'][:40]:40s} {op['shape']}")
  if args.json:
    with open(args.json + '.tmp', 'w') as f:
      json.dump(result, f, indent=1)
    os.replace(args.json + '.tmp', args.json)


if __name__ == '__main__':
  main()
