"""Feature attribution: text methods on TransformerLens models (Captum, shap, attention, ReAGent),
faithfulness metrics and agreement between methods."""
