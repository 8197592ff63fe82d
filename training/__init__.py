"""Model training: the graph engine (`training.graph`), models, and the training job."""
