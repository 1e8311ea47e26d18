"""REST glue every lmworks service shares (errors, limits, API key, metrics, running) and the classifier app."""
