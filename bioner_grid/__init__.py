"""bioner-grid: grids of biomedical NER fine-tuning runs, tracked in MLflow."""

__version__ = "0.1.0"
