"""tfserving-export: turn frozen graphs and Keras models into servable SavedModels."""
