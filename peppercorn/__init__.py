"""Shared plumbing for the Peppercorn pipeline: configuration, Java and Spark sessions."""
