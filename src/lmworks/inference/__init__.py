"""Inference: batched prediction over texts and streamed prediction over files."""
