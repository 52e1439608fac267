"""The fault lab (network namespaces) and the chaos matrix of issue 5; see README.md."""
