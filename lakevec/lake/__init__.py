"""The lakehouse layer: storage access, versioned logs, manifests."""
