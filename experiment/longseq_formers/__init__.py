"""Long-sequence models and tasks for the Memoria experiments: data generation, datasets, models, Lightning tasks."""
