"""The Streamlit leaderboard over the results store."""
