"""Text in: files and encodings, the vocabulary and its word classes, corpora and their
batches, and ARPA back-off models."""
