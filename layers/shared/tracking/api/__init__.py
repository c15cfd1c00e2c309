"""HTTP adapters: Powertools resolvers whose routes only translate between HTTP and the domain."""
