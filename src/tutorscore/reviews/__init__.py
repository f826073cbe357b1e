"""Human reviews of sessions and how far each judge agrees with them."""
