"""The e2e tier's images, built without a container engine, and the helpers of their contract tests."""
