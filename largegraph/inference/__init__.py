"""Using a finished run: predictions and embeddings under the user's ids."""
