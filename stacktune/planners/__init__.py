"""One module per service; each turns the shared figures (budget, chain, profile) into settings."""
