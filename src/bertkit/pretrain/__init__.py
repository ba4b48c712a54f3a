"""Pretraining: WordPiece vocabularies, documents to MLM/NSP instances, (whole-word) masking, the task."""
