"""Influence functions: which training examples made a model do this (Grosse et al. 2023, EK-FAC via kronfluence).

`engine` drives kronfluence (factors, pairwise and self scores) on a model copy it tracks in place and then
restores; `tasks` holds the losses and measurements; `exact` is the reference the approximations are tested
against (the damped Gauss-Newton matrix, explicit, float64, for models small enough); `training_sets` cuts a
model's corpus into training sequences the way it was trained; `tfidf` is the lexical pre-filter."""
