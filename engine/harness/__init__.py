"""The validation harness: offline environments, throwaway checkouts, gold task validation."""
