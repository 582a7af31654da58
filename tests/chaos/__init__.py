"""The crash harness (kill -9 at random moments under load) and its CI test."""
