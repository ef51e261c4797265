"""Model assets: assembling packaged model files into a cache, verifying them, locating them."""
