"""Building blocks both backends use (bundles, batch planning, hashing, training output); they import no adapter."""
