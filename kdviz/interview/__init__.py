"""Interview prep and classroom lessons (no Streamlit): spot-the-bug snippets, a self-graded quiz, the lesson path."""
