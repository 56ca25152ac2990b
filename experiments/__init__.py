"""Quality studies (peers, fine-tuning, terraces, TTA, regularisation, pixel size, seams,
precision, cross-validation), run by the benchmark harness: ``python -m bench NAME``."""
