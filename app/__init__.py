"""The Streamlit app: pages and widgets only; everything else is in analyses/ and compute/."""
