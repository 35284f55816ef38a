"""The Shapley-value workflow for tabular classifiers (black boxes beside interpretable baselines)."""
