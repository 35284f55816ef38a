"""Interaction bases (Bushnaq et al. 2024): the Local Interaction Basis, the global Interaction Basis and
the PCA baseline, their interaction graphs and ablations. No Streamlit here; analyses/ drives it."""
