"""Model backends behind the Serve deployments; each loads its model once per replica."""
