"""skeleton_anon: measure and remove private information from 3D skeleton action data.

A JAX/Flax reimplementation of "Anonymization for Skeleton Action Recognition"
(Moon et al., arXiv 2111.15129), with honest held-out privacy evaluation.

The public API (docs/api.md shows it in use) is importable from here:

  import skeleton_anon as sa
  ds = sa.load_npz('FILE.npz')
  model = sa.build_classifier('sgn', num_classes=10, layout=ds.layout, num_persons=1)

Names are resolved on first use (PEP 562), so `import skeleton_anon` stays cheap and the command
lines start without importing JAX before they have configured it. Everything else in the
package is internal and may change between versions; the names in API do not, without a note in
docs/api.md.
"""

from __future__ import annotations

import importlib

__version__ = '0.1.0'

# public name -> (module, attribute in it); None: the module itself.
API = {
    # data: the dataset file, skeleton layouts, synthetic recordings, array transforms
    'SkeletonDataset': ('skeleton_anon.data.dataset', 'SkeletonDataset'),
    'load_npz': ('skeleton_anon.data.dataset', 'load_npz'),
    'save_npz': ('skeleton_anon.data.dataset', 'save_npz'),
    'Layout': ('skeleton_anon.data.layouts', 'Layout'),
    'get_layout': ('skeleton_anon.data.layouts', 'get_layout'),
    'make_synthetic': ('skeleton_anon.data.synthetic', 'make_synthetic'),
    'transforms': ('skeleton_anon.data.transforms', None),
    # models: Flax Linen classifiers and anonymizers by name
    'build_classifier': ('skeleton_anon.models.registry', 'build_classifier'),
    'build_anonymizer': ('skeleton_anon.models.registry', 'build_anonymizer'),
    'count_params': ('skeleton_anon.models.registry', 'count_params'),
    'CLASSIFIERS': ('skeleton_anon.models.registry', 'CLASSIFIERS'),
    'ANONYMIZERS': ('skeleton_anon.models.registry', 'ANONYMIZERS'),
    # training: pure, jit-able steps over plain arrays or a mesh's global arrays
    'NetState': ('skeleton_anon.train.state', 'NetState'),
    'init_state': ('skeleton_anon.train.state', 'init_state'),
    'init_bank_state': ('skeleton_anon.train.state', 'init_bank_state'),
    'LOSS_FORMS': ('skeleton_anon.train.steps', 'LOSS_FORMS'),
    'jit_step': ('skeleton_anon.train.steps', 'jit_step'),
    'classifier_logits': ('skeleton_anon.train.steps', 'classifier_logits'),
    'bank_logits': ('skeleton_anon.train.steps', 'bank_logits'),
    'bank_train_step': ('skeleton_anon.train.steps', 'bank_train_step'),
    'apply_anonymizer': ('skeleton_anon.train.steps', 'apply_anonymizer'),
    'anonymizer_loss': ('skeleton_anon.train.steps', 'anonymizer_loss'),
    'min_step': ('skeleton_anon.train.steps', 'min_step'),
    'max_step': ('skeleton_anon.train.steps', 'max_step'),
    'reconstruction_step': ('skeleton_anon.train.steps', 'reconstruction_step'),
    # fitted anonymizers (the recommended configs' priors) and trained ones saved by a run
    'StylePrior': ('skeleton_anon.models.style_prior', 'StylePrior'),
    'fit_style_prior': ('skeleton_anon.train.style_prior', 'fit_style_prior'),
    'style_prior_anonymize': ('skeleton_anon.models.style_prior', 'anonymize'),
    'fit_private_style_prior': ('skeleton_anon.train.private_prior', 'fit_private_style_prior'),
    'dp_noise_multiplier': ('skeleton_anon.train.dp', 'noise_multiplier'),
    'dp_epsilon': ('skeleton_anon.train.dp', 'gaussian_epsilon'),
    'train_on_anonymized': ('skeleton_anon.attacks.suite', 'train_on_anonymized'),
    'load_anonymizer': ('skeleton_anon.pipeline.anonymizer', 'load_anonymizer'),
    # the attack suite on arrays
    'AttackData': ('skeleton_anon.attacks.data', 'AttackData'),
    'attack_split': ('skeleton_anon.attacks.data', 'attack_split'),
    'run_suite': ('skeleton_anon.attacks.suite', 'run_suite'),
}

__all__ = ['API', '__version__', *API]


def __getattr__(name: str):
  if name not in API:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  module, attribute = API[name]
  value = importlib.import_module(module)
  if attribute is not None:
    value = getattr(value, attribute)
  globals()[name] = value          # resolved once
  return value


def __dir__():
  return sorted(__all__)
