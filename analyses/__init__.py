"""Analyses: frozen specs -> results (tables + Plotly figures). No Streamlit here."""
