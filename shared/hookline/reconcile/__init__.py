"""The reconciler: what the scheduled run and operator actions do (ReconcilerFunction)."""
