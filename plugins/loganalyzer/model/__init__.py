"""The IsolationForest detector's model: training, registering in MLflow, following @champion."""

MODEL_NAME = "log-anomaly-detector"
CHAMPION_ALIAS = "champion"
