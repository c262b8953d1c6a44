"""What every API of the site shares: the error format and the filters that refuse bad values by name."""
