"""File names of a trained model's folder, shared by everything that reads or writes one."""

MODEL_FILE = "model.joblib"
METRICS_FILE = "metrics.json"
ENVIRONMENT_FILE = "environment.json"
TRAINING_FILE = "training.json"
REFERENCE_FILE = "reference.csv"  # the training features and the model's predictions: the drift baseline
PREDICTION_COLUMN = "prediction"
