"""One training run; knows nothing of Optuna, Ray or MLflow."""
