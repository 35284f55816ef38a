"""The compute layer: models, caches, jobs, the store and figure export. No Streamlit here."""
