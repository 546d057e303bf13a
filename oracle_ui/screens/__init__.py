"""Page scripts that st.navigation runs; each one calls its view in oracle_ui/views/."""
