"""Small HTTP clients for provider APIs (thin events now, recovering missed events later)."""
