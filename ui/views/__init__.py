"""Streamlit pages of the web UI; each module's `render()` draws one page."""
