"""The benchmark of issue 6: our failover beside keepalived's, in the fault lab (``python -m bench``)."""
