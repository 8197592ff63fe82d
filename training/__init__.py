"""Model training: the graph engine (`engine`), models, and the training job."""
