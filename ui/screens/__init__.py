"""One script per page, as st.navigation runs them (file-based pages, which AppTest can switch between)."""
