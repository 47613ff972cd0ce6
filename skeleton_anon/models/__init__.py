"""Flax Linen classifiers and anonymizers for skeleton batches [N, M, T, V, C] (channels last).

Contract used by training and evaluation:
  build_classifier(name, *, num_classes, layout, num_persons, **knobs) -> nn.Module
    module.apply(variables, x, train=bool, rngs={'dropout': key}, mutable=['batch_stats'])
    returns logits [N, num_classes]; variables = {'params', 'batch_stats'?}.
  build_anonymizer(name, *, num_persons, num_joints, **knobs) -> nn.Module
    module.apply(variables, x, lengths) returns x' with x's shape; padded frames and absent
    persons stay exactly zero.
"""

from skeleton_anon.models.registry import (ANONYMIZERS, CLASSIFIERS, build_anonymizer,
                                           build_classifier, count_params)
