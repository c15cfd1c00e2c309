"""Tools that drive a running stack: demo traffic and bounded load."""
