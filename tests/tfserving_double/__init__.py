"""TF Serving TEST DOUBLE: a stand-in server for tests. Never a production image."""
