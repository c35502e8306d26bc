"""The watch-fed cache and the Kubernetes API client: resource table, informers, ClusterState."""
