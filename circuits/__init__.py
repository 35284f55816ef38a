"""Attention features and circuit heads (no Streamlit): per-head readings of hook_z SAEs, direct feature
attribution by source position, feature families, tasks, head patching and the discrete-code circuit method."""
