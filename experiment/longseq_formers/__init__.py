"""Long-sequence models and tasks for the Memoria experiments: data, datasets, models, Lightning tasks.

Importing this package registers every experiment model with transformers' Auto classes.
"""

from . import model
