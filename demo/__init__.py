"""`make demo`: migration-guard running on a local embedded control plane, and a scripted tour."""
