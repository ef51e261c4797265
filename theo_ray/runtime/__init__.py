"""Running Theo on Ray: the cluster (start/join/stop, auth token) and the Serve applications."""
