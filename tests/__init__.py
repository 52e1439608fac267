"""The test suite; it mirrors the source tree (hotstandby/, services/, cli/) and the deployment."""
