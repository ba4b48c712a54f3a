"""Sequence to sequence: BERT-initialised encoder-decoders for summarisation, translation and dialogue."""
