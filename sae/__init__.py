"""Sparse autoencoders: Feature Choice and Mutual Choice architectures (registered with SAELens on
import), the aux_k / aux_zipf losses, training from the activation cache, and evaluation. No Streamlit."""
from . import architectures as _architectures  # noqa: F401  (registers the SAELens architectures)
