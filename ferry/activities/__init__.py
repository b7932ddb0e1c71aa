"""Activities: small classes that hold their clients, built once in the worker."""
